import { el, fmtNum } from './dom.js';

// An axis maps one param or metric of every run to [0, 1]: numbers by
// their range (log when they span decades and are all positive), other
// values as evenly spaced categories in sorted order.
function axis(key, values) {
  const present = values.filter(v => v != null && v !== '');
  const nums = present.map(Number);
  const numeric = present.length > 0 && nums.every(Number.isFinite);
  if (numeric) {
    let lo = Math.min(...nums), hi = Math.max(...nums);
    const log = lo > 0 && hi / lo >= 100;
    const f = log ? Math.log10 : (x) => x;
    const a = f(lo), b = f(hi);
    return { key, numeric, log, lo, hi, pos: (v) => (v == null || v === '' ? null : b === a ? 0.5 : (f(Number(v)) - a) / (b - a)),
      ticks: [lo, hi] };
  }
  const cats = [...new Set(present.map(String))].sort();
  const idx = new Map(cats.map((c, i) => [c, i]));
  return { key, numeric: false, cats, pos: (v) => (v == null || v === '' ? null : cats.length === 1 ? 0.5 : idx.get(String(v)) / (cats.length - 1)),
    ticks: cats };
}

function colorFor(t) { // t in [0, 1]: blue (low) to red (high)
  const h = 240 - 240 * (t == null ? 0.5 : t);
  return `hsla(${h}, 70%, 45%, 0.55)`;
}

function canvasFor(width, height) {
  const dpr = window.devicePixelRatio || 1;
  const c = el('canvas', { width: String(Math.round(width * dpr)), height: String(Math.round(height * dpr)) });
  c.style.width = width + 'px';
  c.style.height = height + 'px';
  const g = c.getContext('2d');
  g.scale(dpr, dpr);
  return [c, g];
}

// parallelCoords draws one line per run across an axis per key, the last
// axis the metric, each line colored by that metric (blue low, red high).
// rows: [{label, values: Map(key -> value)}].
export function parallelCoords(rows, keys, metric) {
  const all = [...keys, metric];
  const axes = all.map(k => axis(k, rows.map(r => r.values.get(k))));
  const width = Math.max(480, Math.min(1100, (document.getElementById('main') || document.body).clientWidth - 40));
  const height = 320, top = 24, bottom = 40, left = 60, right = 60;
  const [c, g] = canvasFor(width, height);
  const css = getComputedStyle(document.documentElement);
  const fg = css.getPropertyValue('--fg').trim() || '#222', line = css.getPropertyValue('--line').trim() || '#ccc';
  const x = (i) => left + (axes.length === 1 ? 0 : i * (width - left - right) / (axes.length - 1));
  const y = (p) => top + (1 - p) * (height - top - bottom);
  const m = axes[axes.length - 1];
  g.lineWidth = 1;
  for (const r of rows) {
    g.strokeStyle = colorFor(m.pos(r.values.get(metric)));
    g.beginPath();
    let open = false;
    axes.forEach((a, i) => {
      const p = a.pos(r.values.get(a.key));
      if (p == null) { open = false; return; }
      if (open) g.lineTo(x(i), y(p)); else { g.moveTo(x(i), y(p)); open = true; }
    });
    g.stroke();
  }
  g.fillStyle = fg;
  g.font = '12px system-ui, sans-serif';
  g.textAlign = 'center';
  axes.forEach((a, i) => {
    g.strokeStyle = line;
    g.beginPath(); g.moveTo(x(i), y(0)); g.lineTo(x(i), y(1)); g.stroke();
    g.fillText(a.key + (a.log ? ' (log)' : ''), x(i), height - 12);
    const ticks = a.numeric ? [[a.lo, 0], [a.hi, 1]] : a.cats.length <= 12 ? a.cats.map(t => [t, a.pos(t)]) : [[a.cats[0], 0], [a.cats[a.cats.length - 1], 1]];
    g.textAlign = 'right';
    for (const [t, p] of ticks) g.fillText(String(a.numeric ? fmtNum(t) : t).slice(0, 14), x(i) - 4, y(p) + 4);
    g.textAlign = 'center';
  });
  c.setAttribute('role', 'img');
  c.setAttribute('aria-label', `parallel coordinates of ${keys.join(', ')} against ${metric} over ${rows.length} runs`);
  c.dataset.lines = String(rows.length);
  return c;
}

// scatter plots runs by two keys; a hover title is not possible on canvas,
// so the nearest run's label shows under the plot.
export function scatter(rows, xKey, yKey) {
  const ax = axis(xKey, rows.map(r => r.values.get(xKey))), ay = axis(yKey, rows.map(r => r.values.get(yKey)));
  const width = Math.max(320, Math.min(700, (document.getElementById('main') || document.body).clientWidth - 40));
  const height = 320, pad = 48;
  const [c, g] = canvasFor(width, height);
  const css = getComputedStyle(document.documentElement);
  const fg = css.getPropertyValue('--fg').trim() || '#222', line = css.getPropertyValue('--line').trim() || '#ccc';
  const px = (p) => pad + p * (width - 2 * pad), py = (p) => height - pad - p * (height - 2 * pad);
  g.strokeStyle = line;
  g.strokeRect(pad, pad, width - 2 * pad, height - 2 * pad);
  const pts = [];
  g.fillStyle = 'rgba(31, 119, 180, 0.6)';
  for (const r of rows) {
    const a = ax.pos(r.values.get(xKey)), b = ay.pos(r.values.get(yKey));
    if (a == null || b == null) continue;
    pts.push([px(a), py(b), r.label]);
    g.beginPath(); g.arc(px(a), py(b), 3, 0, 2 * Math.PI); g.fill();
  }
  g.fillStyle = fg;
  g.font = '12px system-ui, sans-serif';
  g.textAlign = 'center';
  g.fillText(xKey + (ax.log ? ' (log)' : ''), width / 2, height - 12);
  g.save(); g.translate(14, height / 2); g.rotate(-Math.PI / 2); g.fillText(yKey + (ay.log ? ' (log)' : ''), 0, 0); g.restore();
  const lab = (a, p) => String(a.numeric ? fmtNum(p === 0 ? a.lo : a.hi) : (p === 0 ? a.cats[0] : a.cats[a.cats.length - 1]) || '');
  g.fillText(lab(ax, 0), pad, height - pad + 14); g.fillText(lab(ax, 1), width - pad, height - pad + 14);
  g.textAlign = 'right';
  g.fillText(lab(ay, 0), pad - 4, height - pad); g.fillText(lab(ay, 1), pad - 4, pad + 4);
  const near = el('div', { class: 'muted', id: 'scatter-near' }, ' ');
  c.addEventListener('mousemove', (e) => {
    const b = c.getBoundingClientRect();
    const mx = e.clientX - b.left, my = e.clientY - b.top;
    let best = null, d = 100;
    for (const p of pts) { const dd = (p[0] - mx) ** 2 + (p[1] - my) ** 2; if (dd < d) { d = dd; best = p; } }
    near.textContent = best ? best[2] : ' ';
  });
  c.dataset.points = String(pts.length);
  c.setAttribute('role', 'img');
  c.setAttribute('aria-label', `scatter of ${yKey} against ${xKey}`);
  return el('div', {}, c, near);
}
