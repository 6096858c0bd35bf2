import * as api from './api.js';
import { el, fmtNum, fmtTime, fmtDuration, errorBox, notFound } from './dom.js';
import { setQuery } from './app.js';
import { ROW, virtualRows } from './vtable.js';

const LIVE_MAX = 500;

// A column is named as in MLflow's search grammar: metrics.loss,
// params.lr, tags.team, attributes.status, attributes.duration.
function cellValue(run, col) {
  const [kind, ...rest] = col.split('.');
  const key = rest.join('.');
  const i = run.info, d = run.data || {};
  switch (kind) {
    // A find per lookup: building a map per run cost more (150 ms for
    // 10,000 runs) than the finds of a sort (10 ms).
    case 'metrics': case 'params': case 'tags': { const x = (d[kind] || []).find(x => x.key === key); return x ? x.value : null; }
  }
  switch (key) {
    case 'run_name': return i.run_name || i.run_id;
    case 'status': return i.status;
    case 'start_time': return Number(i.start_time) || null;
    case 'duration': return i.end_time ? Number(i.end_time) - Number(i.start_time) : null;
    case 'user_id': return i.user_id;
    case 'job': { const t = (d.tags || []).find(t => t.key === 'forge.job_id'); return t ? t.value : null; }
    case 'datasets': {
      const ins = ((run.inputs && run.inputs.dataset_inputs) || []).map(x => x.dataset && x.dataset.name).filter(Boolean);
      const forge = (d.tags || []).filter(t => t.key.startsWith('forge.input.')).map(t => t.value.split(' ')[0]);
      const all = [...new Set([...forge, ...ins])];
      return all.length ? all.join(', ') : null;
    }
  }
  return null;
}

function cellText(col, v) {
  if (v == null) return '';
  if (col === 'attributes.start_time') return fmtTime(v);
  if (col === 'attributes.duration') return fmtDuration(v);
  if (col.startsWith('metrics.') || isRange(col)) return fmtNum(v);
  return String(v);
}

// min.loss and max.loss are the lowest and highest loss a run logged
// (metrics.loss is its last), read from Forge's metrics/ranges.
const isRange = (col) => col.startsWith('min.') || col.startsWith('max.');
const isNum = (col) => col.startsWith('metrics.') || isRange(col) || col === 'attributes.duration' || col === 'attributes.start_time';
const label = (col) => col.startsWith('attributes.') ? col.slice(11).replace('_', ' ') : isRange(col) ? `metrics.${col.slice(4)} (${col.slice(0, 3)})` : col;

// compare orders values with empty cells last, numbers as numbers.
function compare(a, b) {
  if (a == null) return b == null ? 0 : 1;
  if (b == null) return -1;
  const na = Number(a), nb = Number(b);
  if (a !== '' && b !== '' && Number.isFinite(na) && Number.isFinite(nb)) return na - nb;
  return String(a).localeCompare(String(b));
}

// runsPage is an experiment's runs in a virtualized table: only the rows
// in view are in the DOM, so 10,000 runs scroll as fast as 10.
export async function runsPage(expId, query) {
  const page = el('section');
  let exp;
  try {
    exp = await api.experiment(expId);
  } catch (err) {
    if (err.status === 404) return notFound(`Experiment ${expId} does not exist.`, '#/', 'Back to experiments');
    page.append(errorBox(err));
    return page;
  }
  document.title = exp.name + ' · Forge';
  const filterInput = el('input', { type: 'text', id: 'filter', 'aria-label': 'Filter runs',
    placeholder: 'metrics.loss < 0.5 and params.lr = "0.01"', value: query.get('filter') || '' });
  const errorSlot = el('div', { id: 'filter-error' });
  const status = el('span', { class: 'muted', id: 'run-count' });
  const compareBtn = el('button', { type: 'button', id: 'compare', disabled: true }, 'Compare');
  const colsBtn = el('button', { type: 'button', id: 'columns', 'aria-expanded': 'false' }, 'Columns');
  const colsBox = el('div', { class: 'cols', hidden: true });
  const groupSel = el('select', { id: 'group-by', 'aria-label': 'Group by' }, el('option', { value: '' }, 'no grouping'));
  const vt = el('div', { class: 'vt', id: 'runs', role: 'grid', tabindex: '0' });
  page.append(el('h1', {}, exp.name),
    el('p', {}, el('a', { href: '#/' }, '← Experiments')),
    el('form', { class: 'toolbar', onsubmit: (e) => { e.preventDefault(); load(); } },
      filterInput, el('button', { type: 'submit', id: 'search' }, 'Search'), colsBtn, el('label', {}, 'Group ', groupSel), compareBtn, status),
    errorSlot, colsBox, vt);

  let runs = [];
  // cols is the user's choice (in the URL); view is what is drawn: the
  // choice, or defaults read from the runs loaded so far.
  let cols = (query.get('cols') || '').split(',').filter(Boolean);
  let view = cols;
  let sort = query.get('sort') || '';
  let desc = query.get('dir') === 'desc';
  let group = query.get('group') || '';
  const collapsed = new Set();
  const selected = new Set();

  // ranges holds, per metric key, each run's [min, max], read for the
  // min./max. columns in view only (a long history costs the server a
  // scan), then kept for the page's life.
  const ranges = new Map();
  const value = (r, c) => {
    if (!isRange(c)) return cellValue(r, c);
    const byRun = ranges.get(c.slice(4));
    const mm = byRun && byRun.get(r.info.run_id);
    return mm ? mm[c.startsWith('min.') ? 0 : 1] : null;
  };
  async function readRanges(keys) {
    if (!keys.length) return;
    try {
      for (const rg of await api.metricRanges(expId, keys)) {
        ranges.set(rg.key, new Map(rg.run_ids.map((id, i) => [id, [rg.min[i], rg.max[i]]])));
      }
    } catch (err) {
      errorSlot.replaceChildren(errorBox(err));
      return;
    }
    texts = new WeakMap();
    if (isRange(sort) || isRange(group)) sortRows();
    table.refill();
  }
  const rangeKeys = () => [...new Set([...view, sort, group].filter(c => c && isRange(c)).map(c => c.slice(4)))];

  function saveURL() {
    const q = new URLSearchParams();
    if (cols.length) q.set('cols', cols.join(','));
    if (sort) { q.set('sort', sort); if (desc) q.set('dir', 'desc'); }
    if (group) q.set('group', group);
    if (filterInput.value.trim()) q.set('filter', filterInput.value.trim());
    setQuery(q);
  }

  function available() {
    const set = new Set(['attributes.run_name', 'attributes.status', 'attributes.start_time', 'attributes.duration', 'attributes.user_id',
      'attributes.job', 'attributes.datasets']);
    for (const r of runs.slice(0, 2000)) {
      for (const m of r.data.metrics || []) set.add('metrics.' + m.key);
      for (const m of r.data.metrics || []) { set.add('min.' + m.key); set.add('max.' + m.key); }
      for (const p of r.data.params || []) set.add('params.' + p.key);
      for (const t of r.data.tags || []) if (!t.key.startsWith('mlflow.') && !t.key.startsWith('forge.')) set.add('tags.' + t.key);
    }
    return [...set];
  }

  function defaultCols() {
    const all = available();
    return ['attributes.run_name', 'attributes.status', 'attributes.start_time', 'attributes.duration',
      ...all.filter(c => c.startsWith('metrics.')).slice(0, 6), ...all.filter(c => c.startsWith('params.')).slice(0, 4)];
  }

  function drawColumnChooser() {
    colsBox.replaceChildren(...available().map(c => el('label', {},
      el('input', { type: 'checkbox', checked: view.includes(c), onchange: (e) => {
        cols = e.target.checked ? [...view, c] : view.filter(x => x !== c);
        saveURL(); layout();
      } }), ' ' + label(c))));
  }
  colsBtn.addEventListener('click', () => {
    colsBox.hidden = !colsBox.hidden;
    colsBtn.setAttribute('aria-expanded', String(!colsBox.hidden));
    if (!colsBox.hidden) drawColumnChooser();
  });
  compareBtn.addEventListener('click', () => {
    // The metric the table is sorted by is the one to chart first.
    const metric = sort.startsWith('metrics.') ? '&metric=' + encodeURIComponent(sort.slice(8)) : '';
    location.hash = '#/compare?runs=' + encodeURIComponent([...selected].join(',')) + metric;
  });

  // order is what the table shows, top to bottom: run indices, and with
  // grouping a {group} header before each group's runs (hidden when folded).
  let order = [];
  function sortRows() {
    let idx = runs.map((r, i) => i);
    const vals = sort ? runs.map(r => value(r, sort)) : null;
    if (sort) {
      idx.sort((a, b) => {
        const c = compare(vals[a], vals[b]);
        return desc && vals[a] != null && vals[b] != null ? -c : c;
      });
    }
    if (!group) { order = idx; return; }
    const groups = new Map();
    for (const i of idx) {
      const g = value(runs[i], group);
      const k = g == null ? '' : String(g);
      if (!groups.has(k)) groups.set(k, []);
      groups.get(k).push(i);
    }
    order = [];
    for (const k of [...groups.keys()].sort(compare)) {
      const members = groups.get(k);
      const nums = sort && isNum(sort) ? members.map(i => vals[i]).filter(v => v != null).map(Number) : [];
      order.push({ group: k, n: members.length,
        agg: nums.length ? { mean: nums.reduce((a, b) => a + b, 0) / nums.length, min: Math.min(...nums), max: Math.max(...nums) } : null });
      if (!collapsed.has(k)) order.push(...members);
    }
  }
  groupSel.addEventListener('change', () => { group = groupSel.value; collapsed.clear(); saveURL(); sortRows(); layout(); });
  function fillGroups() {
    const keys = available().filter(c => c.startsWith('params.') || c.startsWith('tags.') || c === 'attributes.status' || c === 'attributes.user_id' || c === 'attributes.datasets');
    groupSel.replaceChildren(el('option', { value: '' }, 'no grouping'), ...keys.map(k => el('option', { value: k }, label(k))));
    groupSel.value = keys.includes(group) ? group : '';
  }

  const head = el('div', { class: 'vt-head', role: 'row' });
  const box = el('div', { class: 'vt-rows' });
  const body = el('div', { class: 'vt-body' }, box);
  vt.append(head, body);

  // Column widths are worked out here, in pixels, rather than by the
  // browser per row: each cell is placed at a fixed size (CSS
  // containment), so refilling one lays out that cell and nothing else.
  let xs = [], ws = [];
  const place = (cell, k) => { cell.style.left = xs[k] + 'px'; cell.style.width = ws[k] + 'px'; return cell; };
  function widths() {
    const mins = [32, ...view.map(c => c === 'attributes.run_name' ? 200 : c === 'attributes.start_time' ? 180 : 110)];
    const grow = [0, ...view.map(c => c === 'attributes.run_name' ? 2 : 1)];
    const total = mins.reduce((a, b) => a + b, 0);
    const extra = Math.max(0, vt.clientWidth - total);
    const g = grow.reduce((a, b) => a + b, 0) || 1;
    ws = mins.map((m, i) => Math.floor(m + extra * grow[i] / g));
    xs = ws.map((w, i) => ws.slice(0, i).reduce((a, b) => a + b, 0));
    vt.style.setProperty('--row-width', ws.reduce((a, b) => a + b, 0) + 'px');
  }

  // texts are each run's cell strings for the columns in view, formatted
  // once: a scroll only copies strings.
  let texts = new WeakMap();
  function textsOf(r) {
    let t = texts.get(r);
    if (!t) { t = view.map(c => cellText(c, value(r, c))); texts.set(r, t); }
    return t;
  }

  function layout() {
    view = cols.length ? cols : defaultCols();
    texts = new WeakMap();
    readRanges(rangeKeys().filter(k => !ranges.has(k)));
    widths();
    visibleColumns();
    head.replaceChildren(place(el('div', { class: 'vt-cell' }), 0), ...view.map((c, k) => place(el('div', {
      class: 'vt-cell' + (isNum(c) ? ' num' : ''), role: 'columnheader', 'data-col': c, tabindex: '0',
      title: 'Sort by ' + label(c), 'aria-sort': sort === c ? (desc ? 'descending' : 'ascending') : 'none',
      onclick: () => sortBy(c), onkeydown: (e) => { if (e.key === 'Enter') sortBy(c); },
    }, label(c) + (sort === c ? (desc ? ' ↓' : ' ↑') : '')), k + 1)));
    table.reset();
  }

  function sortBy(c) {
    if (sort === c) desc = !desc; else { sort = c; desc = false; }
    saveURL(); sortRows(); layout();
  }

  function onSelect(e) {
    const row = e.target.closest('.vt-row');
    const id = row.dataset.run;
    if (e.target.checked) selected.add(id); else selected.delete(id);
    row.classList.toggle('sel', e.target.checked);
    compareBtn.disabled = selected.size < 2;
    compareBtn.textContent = selected.size ? `Compare ${selected.size}` : 'Compare';
  }
  function onGroupClick(e) {
    const k = e.currentTarget.dataset.group;
    if (k == null) return;
    if (collapsed.has(k)) collapsed.delete(k); else collapsed.add(k);
    sortRows(); table.refill();
  }

  // A pooled row is built for the columns in view and refilled with
  // whichever run (or group header) comes into its place.
  function makeRow() {
    const row = el('div', { class: 'vt-row', role: 'row' });
    row.addEventListener('click', onGroupClick);
    return row;
  }
  function asRunRow(row) {
    if (row.kind === 'run') return;
    row.kind = 'run';
    row.className = 'vt-row';
    row.removeAttribute('data-group'); row.removeAttribute('aria-expanded'); row.removeAttribute('tabindex');
    const box = el('input', { type: 'checkbox', 'aria-label': 'Select run', onchange: onSelect });
    row.replaceChildren(place(el('div', { class: 'vt-cell' }, box), 0), ...view.map((c, k) => {
      const cell = place(el('div', { class: 'vt-cell' + (isNum(c) ? ' num' : ''), 'data-col': c }), k + 1);
      cell.append(c === 'attributes.run_name' ? el('a', {}, '') : document.createTextNode(''));
      return cell;
    }));
    row.box = box;
    row.cells = [...row.children].slice(1);
  }
  function fill(row, pos) {
    const item = order[pos];
    if (typeof item === 'object') return fillGroup(row, item);
    asRunRow(row);
    const r = runs[item];
    const id = r.info.run_id;
    row.dataset.run = id;
    const sel = selected.has(id);
    if (row.box.checked !== sel) row.box.checked = sel;
    row.classList.toggle('sel', sel);
    const t = textsOf(r);
    for (let k = 0; k < t.length; k++) {
      const cell = row.cells[k], node = cell.firstChild;
      // A column scrolled out of sight sideways is left empty: a wide
      // table refills only the cells a screen shows.
      const text = k >= cols0 && k < cols1 ? t[k] : '';
      if (node.nodeType === 1) { node.textContent = text; node.href = '#/runs/' + encodeURIComponent(id); } else if (node.data !== text) node.data = text;
    }
  }
  // [cols0, cols1) are the columns (of view) in sight, with one to spare
  // on each side.
  let cols0 = 0, cols1 = Infinity;
  function visibleColumns() {
    const left = vt.scrollLeft, right = left + vt.clientWidth;
    let a = 0, b = view.length;
    while (a < view.length && xs[a + 1] + ws[a + 1] < left) a++;
    while (b > a && xs[b] > right) b--;
    a = Math.max(0, a - 1); b = Math.min(view.length, b + 1);
    const changed = a !== cols0 || b !== cols1;
    cols0 = a; cols1 = b;
    return changed;
  }
  function fillGroup(row, g) {
    const open = !collapsed.has(g.group);
    row.kind = 'group';
    row.className = 'vt-row vt-group';
    row.removeAttribute('data-run');
    row.dataset.group = g.group;
    row.tabIndex = -1;
    row.setAttribute('aria-expanded', String(open));
    row.replaceChildren(el('div', { class: 'vt-cell group-label' }, `${open ? '▾' : '▸'} ${label(group)} = ${g.group === '' ? '(none)' : g.group} · ${g.n} run${g.n === 1 ? '' : 's'}` +
      (g.agg ? ` · ${label(sort)} mean ${fmtNum(g.agg.mean)}, min ${fmtNum(g.agg.min)}, max ${fmtNum(g.agg.max)}` : '')));
  }
  // A cell's full text (cut by an ellipsis) shows on hover: set then, not
  // on every refill.
  box.addEventListener('mouseover', (e) => {
    const cell = e.target.closest && e.target.closest('.vt-cell');
    if (cell && !cell.classList.contains('group-label')) cell.title = cell.textContent;
  });
  const table = virtualRows(vt, box, { count: () => order.length, make: makeRow, fill });
  const draw = () => table.draw();
  // Scroll events come once a frame, before the frame is drawn: the rows
  // are refilled right there, so the frame shows them.
  vt.addEventListener('scroll', () => { if (visibleColumns()) table.refill(); else draw(); });
  window.addEventListener('resize', () => { if (vt.isConnected) layout(); });

  let loads = 0;
  async function load() {
    const seq = ++loads;
    errorSlot.replaceChildren();
    saveURL();
    status.textContent = 'Loading…';
    let shown = false;
    try {
      // The first page is drawn as soon as it arrives; the rest follow.
      const all = await api.searchRuns([expId], filterInput.value.trim(), (sofar) => {
        if (shown || seq !== loads) return;
        shown = true;
        runs = sofar.slice();
        fillGroups();
        status.textContent = `${runs.length}+ runs, loading the rest…`;
        vt.scrollTop = 0;
        sortRows();
        layout();
      });
      if (seq !== loads) return;
      runs = all;
    } catch (err) {
      if (seq !== loads) return;
      status.textContent = '';
      errorSlot.replaceChildren(errorBox(err));
      return;
    }
    if (!shown) vt.scrollTop = 0;
    status.textContent = `${runs.length} run${runs.length === 1 ? '' : 's'}`;
    fillGroups();
    sortRows();
    layout();
  }
  // Running runs are read again every 10 s while the page is open: their
  // status, metrics and duration change in place, the order stays. Past
  // LIVE_MAX running runs (a sweep of thousands) the refresh would reread
  // most of the table each time, so it waits for a reload instead.
  const follow = async () => {
    if (!page.isConnected) return;
    const running = runs.filter(r => r.info.status === 'RUNNING');
    if (running.length && running.length <= LIVE_MAX) {
      try {
        const now = new Map((await api.searchRuns([expId], "attributes.status = 'RUNNING'")).map(r => [r.info.run_id, r]));
        for (const r of running) if (!now.has(r.info.run_id)) now.set(r.info.run_id, await api.run(r.info.run_id));
        runs = runs.map(r => now.get(r.info.run_id) || r);
        table.refill();
        readRanges(rangeKeys());
      } catch { /* the next tick tries again */ }
    }
    setTimeout(follow, 10000);
  };
  setTimeout(follow, 10000);

  // Keyboard: arrows move between rows, Enter opens the run, space selects.
  // The focus follows a position in the table, not a row element (the
  // elements are reused as the table scrolls).
  vt.addEventListener('keydown', (e) => {
    const cur = document.activeElement && document.activeElement.closest ? document.activeElement.closest('.vt-row') : null;
    if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      e.preventDefault();
      if (!order.length) return;
      // With no row focused yet, the first one wholly in view.
      const want = cur ? cur.pos + (e.key === 'ArrowDown' ? 1 : -1) : Math.ceil(vt.scrollTop / ROW);
      const pos = Math.max(0, Math.min(order.length - 1, want));
      const row = table.reveal(pos, ROW);
      if (!row) return;
      row.tabIndex = -1;
      row.focus({ preventScroll: true });
    } else if (cur && e.key === 'Enter' && cur.dataset.run) {
      location.hash = '#/runs/' + encodeURIComponent(cur.dataset.run);
    } else if (cur && e.key === 'Enter' && cur.dataset.group != null) {
      cur.click();
    } else if (cur && e.key === ' ' && cur.dataset.run) {
      e.preventDefault();
      const box = cur.querySelector('input[type=checkbox]');
      box.checked = !box.checked;
      box.dispatchEvent(new Event('change'));
    }
  });
  load();
  return page;
}
