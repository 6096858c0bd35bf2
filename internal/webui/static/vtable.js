// vtable draws a long list of fixed-height rows into a scrolling box with
// a small pool of row elements that is recycled: only the rows in view are
// in the page, a row leaving the view is refilled with one coming in
// (its text changed in place, no elements created), and the pool is moved
// as one by a transform. The rows stay in the page in the list's order
// (tests, find in page and screen readers read them in that order).
export const ROW = 28;

// OVER is the rows drawn beyond each edge of the view: enough for a
// keyboard step, few enough that a fast scroll (every row new each frame)
// fills little more than a screen.
const OVER = 3;

// virtualRows keeps box (the pool's parent, inside the scroller vt)
// showing positions [start, end) of count() rows; make() builds a row
// element, fill(row, pos) writes position pos into it. Each row element
// carries the position it shows in row.pos.
export function virtualRows(vt, box, { count, make, fill }) {
  let start = 0, end = 0, version = 0;
  let pool = [];
  let height = -1;
  function draw() {
    const n = count();
    if (n * ROW !== height) { height = n * ROW; box.parentNode.style.height = height + 'px'; }
    const top = vt.scrollTop, view = vt.clientHeight;
    const s = Math.max(0, Math.min(n, Math.floor(top / ROW) - OVER));
    const e = Math.min(n, Math.ceil((top + view) / ROW) + OVER);
    const kept = new Map();
    const free = [];
    for (const r of pool) {
      if (r.version === version && r.pos >= s && r.pos < e) kept.set(r.pos, r); else free.push(r);
    }
    if (s === start && e === end && kept.size === e - s) return;
    start = s; end = e;
    // Free rows are reused in their page order: when every row is new (a
    // fast scroll, a jump) none moves, only their text changes.
    const next = [];
    let f = 0;
    for (let p = s; p < e; p++) {
      let r = kept.get(p);
      if (!r) {
        r = f < free.length ? free[f++] : make();
        r.pos = p; r.version = version;
        fill(r, p);
      }
      next.push(r);
    }
    // Put the rows in order, moving only those whose place changed: on a
    // scroll by a few rows, those few go from one end to the other.
    let at = box.firstChild;
    for (const r of next) {
      if (r === at) at = at.nextSibling;
      else box.insertBefore(r, at);
    }
    for (; f < free.length; f++) free[f].remove();
    pool = next;
    box.style.transform = `translateY(${s * ROW}px)`;
  }
  return {
    draw,
    // refill redraws every row (the data changed, the elements are fine).
    refill() { version++; draw(); },
    // reset drops the pool (the columns changed: rows are built anew).
    reset() { version++; pool = []; box.replaceChildren(); start = end = 0; draw(); },
    rows: () => pool,
    get start() { return start; },
    // reveal scrolls just enough for position pos to be in view, under
    // the sticky header of head pixels.
    reveal(pos, head) {
      const y = pos * ROW;
      if (y < vt.scrollTop) vt.scrollTop = y;
      else if (y + ROW > vt.scrollTop + vt.clientHeight - head) vt.scrollTop = y + ROW - vt.clientHeight + head;
      draw();
      return pool[pos - start];
    },
  };
}
