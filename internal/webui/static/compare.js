import * as api from './api.js';
import { el, errorBox, notFound } from './dom.js';
import { lineChart } from './chart.js';
import { setQuery } from './app.js';
import { parallelCoords, scatter } from './pcoords.js';

// comparePage overlays one metric of the selected runs (?runs=a,b,c) and
// lists the params whose values differ between them.
export async function comparePage(query) {
  document.title = 'Compare · Forge';
  const ids = (query.get('runs') || '').split(',').filter(Boolean);
  const page = el('section', {}, el('h1', {}, `Compare ${ids.length} runs`));
  if (!ids.length) return notFound('No runs chosen to compare.', '#/', 'Back to experiments');
  // About 50,000 buckets in all: 1,000 per run for a few runs, fewer
  // (never under 100) for many, so 100 runs stay under a few MB.
  const buckets = Math.max(100, Math.min(1000, Math.floor(50000 / ids.length)));
  // The metric named in the URL is read while the runs are: the chart's
  // data does not wait for the page's. Past 100 runs (more than one
  // request) the runs, which the whole page waits on, are read first.
  const first = query.get('metric');
  let early = first && ids.length <= 100 ? api.metricBuckets(ids, first, buckets) : null;
  if (early) early.catch(() => {}); // a failure is shown by draw, if it uses it
  let runs;
  try {
    runs = await api.runsByID(ids);
  } catch (err) {
    page.append(errorBox(err));
    return page;
  }
  page.prepend(el('p', {}, el('a', { href: '#/experiments/' + encodeURIComponent(runs[0].info.experiment_id) }, '← Runs')));
  const name = r => r.info.run_name || r.info.run_id;
  const keys = [...new Set(runs.flatMap(r => (r.data.metrics || []).map(m => m.key)))].sort();
  const pick = el('select', { id: 'metric', 'aria-label': 'Metric' }, keys.map(k => el('option', { value: k }, k)));
  pick.value = query.get('metric') && keys.includes(query.get('metric')) ? query.get('metric') : keys[0] || '';
  const chartSlot = el('div', { id: 'charts' });
  const paramKeys = [...new Set(runs.flatMap(r => (r.data.params || []).map(p => p.key)))].sort();
  const groupPick = el('select', { id: 'chart-group', 'aria-label': 'Group runs by' }, el('option', { value: '' }, 'each run'),
    paramKeys.map(k => el('option', { value: k }, 'params.' + k)));
  groupPick.value = paramKeys.includes(query.get('group')) ? query.get('group') : '';
  page.append(el('div', { class: 'toolbar' }, el('label', {}, 'Metric ', pick), el('label', {}, ' Lines: ', groupPick)), chartSlot);
  const pval = (r, k) => { const p = (r.data.params || []).find(p => p.key === k); return p ? p.value : '(none)'; };
  const groupsOf = () => groupPick.value ? runs.map(r => `${groupPick.value}=${pval(r, groupPick.value)}`) : null;
  let chart = null;
  groupPick.addEventListener('change', () => {
    const q = new URLSearchParams(location.hash.split('?')[1] || '');
    if (groupPick.value) q.set('group', groupPick.value); else q.delete('group');
    setQuery(q);
    if (chart) chart.regroup(groupsOf());
  });
  async function draw() {
    const key = pick.value;
    if (!key) { chartSlot.replaceChildren(el('p', { class: 'muted' }, 'These runs have no metrics.')); return; }
    const q = new URLSearchParams(location.hash.split('?')[1] || ''); q.set('metric', key); setQuery(q);
    try {
      const hist = await (key === first && early ? early : api.metricBuckets(runs.map(r => r.info.run_id), key, buckets));
      early = null;
      chart = lineChart(key, runs.map((r, i) => ({ label: name(r), ...hist[i] })), { groups: groupsOf() });
      chartSlot.replaceChildren(chart);
    } catch (err) { chartSlot.replaceChildren(errorBox(err)); }
  }
  pick.addEventListener('change', draw);
  draw();

  const params = [...new Set(runs.flatMap(r => (r.data.params || []).map(p => p.key)))].sort();
  const val = (r, k) => { const p = (r.data.params || []).find(p => p.key === k); return p ? p.value : ''; };
  const differ = params.filter(k => new Set(runs.map(r => val(r, k))).size > 1);

  // Params against a metric: parallel coordinates and a scatter.
  const rows = runs.map(r => ({ label: name(r), values: new Map([
    ...(r.data.params || []).map(p => ['params.' + p.key, p.value]),
    ...(r.data.metrics || []).map(m => ['metrics.' + m.key, m.value])]) }));
  const all = [...params.map(k => 'params.' + k), ...keys.map(k => 'metrics.' + k)];
  const pcSlot = el('div', { id: 'pcoords' });
  const drawPC = () => {
    if (!pick.value) return;
    const axes = (differ.length ? differ : params).slice(0, 12).map(k => 'params.' + k);
    pcSlot.replaceChildren(parallelCoords(rows, axes, 'metrics.' + pick.value));
  };
  const xSel = el('select', { id: 'scatter-x', 'aria-label': 'Scatter x' }, all.map(k => el('option', { value: k }, k)));
  const ySel = el('select', { id: 'scatter-y', 'aria-label': 'Scatter y' }, all.map(k => el('option', { value: k }, k)));
  xSel.value = query.get('x') && all.includes(query.get('x')) ? query.get('x') : (differ[0] ? 'params.' + differ[0] : all[0] || '');
  ySel.value = query.get('y') && all.includes(query.get('y')) ? query.get('y') : (pick.value ? 'metrics.' + pick.value : all[1] || '');
  const scSlot = el('div', { id: 'scatter' });
  const drawSC = () => {
    const q = new URLSearchParams(location.hash.split('?')[1] || ''); q.set('x', xSel.value); q.set('y', ySel.value); setQuery(q);
    scSlot.replaceChildren(scatter(rows, xSel.value, ySel.value));
  };
  pick.addEventListener('change', drawPC);
  xSel.addEventListener('change', drawSC);
  ySel.addEventListener('change', drawSC);
  if (params.length && keys.length) {
    page.append(el('h2', {}, 'Params against the metric'), pcSlot);
    drawPC();
  }
  if (all.length > 1) {
    page.append(el('h2', {}, 'Scatter'), el('div', { class: 'toolbar' }, el('label', {}, 'x ', xSel), el('label', {}, 'y ', ySel)), scSlot);
    drawSC();
  }

  page.append(el('h2', {}, 'Params that differ'), !differ.length ? el('p', { class: 'muted' }, 'All params are the same.')
    : runs.length > 20 ? el('p', { id: 'param-diff' }, `${differ.length} of ${params.length} params differ across ${runs.length} runs: ${differ.join(', ')}.`)
    : el('table', { class: 'grid diff', id: 'param-diff' },
      el('thead', {}, el('tr', {}, el('th', {}, 'Param'), runs.map(r => el('th', {}, el('a', { href: '#/runs/' + encodeURIComponent(r.info.run_id) }, name(r)))))),
      el('tbody', {}, differ.map(k => el('tr', {}, el('th', {}, k), runs.map(r => el('td', {}, val(r, k))))))));
  return page;
}
