import * as api from './api.js';
import { el, fmtNum, fmtTime, fmtDuration, errorBox, notFound } from './dom.js';
import { setQuery } from './app.js';

const ROW = 28;
const LIVE_MAX = 500;

// A column is named as in MLflow's search grammar: metrics.loss,
// params.lr, tags.team, attributes.status, attributes.duration.
function cellValue(run, col) {
  const [kind, ...rest] = col.split('.');
  const key = rest.join('.');
  const i = run.info, d = run.data || {};
  switch (kind) {
    case 'metrics': { const m = (d.metrics || []).find(m => m.key === key); return m ? m.value : null; }
    case 'params': { const p = (d.params || []).find(p => p.key === key); return p ? p.value : null; }
    case 'tags': { const t = (d.tags || []).find(t => t.key === key); return t ? t.value : null; }
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
  if (col.startsWith('metrics.')) return fmtNum(v);
  return String(v);
}

const isNum = (col) => col.startsWith('metrics.') || col === 'attributes.duration' || col === 'attributes.start_time';
const label = (col) => col.startsWith('attributes.') ? col.slice(11).replace('_', ' ') : col;

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
    const vals = sort ? runs.map(r => cellValue(r, sort)) : null;
    if (sort) {
      idx.sort((a, b) => {
        const c = compare(vals[a], vals[b]);
        return desc && vals[a] != null && vals[b] != null ? -c : c;
      });
    }
    if (!group) { order = idx; return; }
    const groups = new Map();
    for (const i of idx) {
      const g = cellValue(runs[i], group);
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
  const body = el('div', { class: 'vt-body' });
  vt.append(head, body);
  let template = '';

  function layout() {
    view = cols.length ? cols : defaultCols();
    template = '32px ' + view.map(c => c === 'attributes.run_name' ? 'minmax(200px, 2fr)' : c === 'attributes.start_time' ? 'minmax(180px, 1fr)' : 'minmax(110px, 1fr)').join(' ');
    head.style.gridTemplateColumns = template;
    head.replaceChildren(el('div', { class: 'vt-cell' }), ...view.map(c => el('div', {
      class: 'vt-cell' + (isNum(c) ? ' num' : ''), role: 'columnheader', 'data-col': c, tabindex: '0',
      title: 'Sort by ' + label(c), 'aria-sort': sort === c ? (desc ? 'descending' : 'ascending') : 'none',
      onclick: () => sortBy(c), onkeydown: (e) => { if (e.key === 'Enter') sortBy(c); },
    }, label(c) + (sort === c ? (desc ? ' ↓' : ' ↑') : ''))));
    drawn = { start: -1, end: -1 };
    draw();
  }

  function sortBy(c) {
    if (sort === c) desc = !desc; else { sort = c; desc = false; }
    saveURL(); sortRows(); layout();
  }

  let drawn = { start: -1, end: -1 };
  // Rows stay in the DOM while they are in view: scrolling creates only
  // the rows that come into view and drops those that leave.
  let live = new Map(); // position in order -> row element
  function rowFor(i) {
    if (typeof order[i] === 'object') return groupRow(i, order[i]);
    const r = runs[order[i]];
    const id = r.info.run_id;
    const row = el('div', { class: 'vt-row' + (selected.has(id) ? ' sel' : ''), role: 'row', 'data-run': id });
    row.style.top = ((i + 1) * ROW) + 'px';
    row.style.gridTemplateColumns = template;
    row.append(el('div', { class: 'vt-cell' }, el('input', { type: 'checkbox', 'aria-label': 'Select run', checked: selected.has(id),
      onchange: (e) => {
        if (e.target.checked) selected.add(id); else selected.delete(id);
        row.classList.toggle('sel', e.target.checked);
        compareBtn.disabled = selected.size < 2;
        compareBtn.textContent = selected.size ? `Compare ${selected.size}` : 'Compare';
      } })));
    for (const c of view) {
      const v = cellValue(r, c);
      const cell = el('div', { class: 'vt-cell' + (isNum(c) ? ' num' : ''), 'data-col': c });
      if (c === 'attributes.run_name') cell.append(el('a', { href: '#/runs/' + encodeURIComponent(id) }, cellText(c, v)));
      else cell.textContent = cellText(c, v);
      cell.title = cell.textContent;
      row.append(cell);
    }
    return row;
  }
  function groupRow(i, g) {
    const open = !collapsed.has(g.group);
    const row = el('div', { class: 'vt-row vt-group', role: 'row', 'data-group': g.group, tabindex: '-1', 'aria-expanded': String(open),
      onclick: () => { if (open) collapsed.add(g.group); else collapsed.delete(g.group); sortRows(); drawn = { start: -1, end: -1 }; draw(); } },
      el('div', { class: 'vt-cell group-label' }, `${open ? '▾' : '▸'} ${label(group)} = ${g.group === '' ? '(none)' : g.group} · ${g.n} run${g.n === 1 ? '' : 's'}` +
        (g.agg ? ` · ${label(sort)} mean ${fmtNum(g.agg.mean)}, min ${fmtNum(g.agg.min)}, max ${fmtNum(g.agg.max)}` : '')));
    row.style.top = ((i + 1) * ROW) + 'px';
    return row;
  }
  function draw() {
    body.style.height = (order.length * ROW + ROW) + 'px';
    const start = Math.max(0, Math.floor(vt.scrollTop / ROW) - 10);
    const end = Math.min(order.length, Math.ceil((vt.scrollTop + vt.clientHeight) / ROW) + 10);
    if (start === drawn.start && end === drawn.end) return;
    const fresh = drawn.start < 0;
    drawn = { start, end };
    if (fresh) { live = new Map(); body.replaceChildren(); }
    for (const [i, row] of live) if (i < start || i >= end) { row.remove(); live.delete(i); }
    const added = [];
    for (let i = start; i < end; i++) if (!live.has(i)) { const row = rowFor(i); live.set(i, row); added.push([i, row]); }
    // Keep DOM order the table's order (tests and screen readers read it):
    // placed from the last, each new row goes before its successor.
    for (const [i, row] of added.reverse()) {
      const next = live.get(i + 1);
      if (next && next.parentNode === body) body.insertBefore(row, next); else body.append(row);
    }
  }
  let pending = false;
  vt.addEventListener('scroll', () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; draw(); });
  });
  window.addEventListener('resize', () => { drawn = { start: -1, end: -1 }; draw(); });

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
        drawn = { start: -1, end: -1 };
        draw();
      } catch { /* the next tick tries again */ }
    }
    setTimeout(follow, 10000);
  };
  setTimeout(follow, 10000);

  // Keyboard: arrows move between rows, Enter opens the run, space selects.
  vt.addEventListener('keydown', (e) => {
    const rows = [...body.querySelectorAll('.vt-row')];
    const cur = document.activeElement && document.activeElement.closest ? document.activeElement.closest('.vt-row') : null;
    let k = cur ? rows.indexOf(cur) : -1;
    if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      e.preventDefault();
      k = Math.max(0, Math.min(rows.length - 1, k + (e.key === 'ArrowDown' ? 1 : -1)));
      const row = rows[k];
      if (!row) return;
      row.tabIndex = -1;
      row.focus();
      row.scrollIntoView({ block: 'nearest' });
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
