import * as api from './api.js';
import { el, errorBox, notFound } from './dom.js';
import { lineChart } from './chart.js';
import { setQuery } from './app.js';

// comparePage overlays one metric of the selected runs (?runs=a,b,c) and
// lists the params whose values differ between them.
export async function comparePage(query) {
  document.title = 'Compare · Forge';
  const ids = (query.get('runs') || '').split(',').filter(Boolean);
  const page = el('section', {}, el('h1', {}, `Compare ${ids.length} runs`));
  if (!ids.length) return notFound('No runs chosen to compare.', '#/', 'Back to experiments');
  let runs;
  try {
    runs = await Promise.all(ids.map(id => api.run(id)));
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
  page.append(el('div', { class: 'toolbar' }, el('label', {}, 'Metric ', pick)), chartSlot);
  async function draw() {
    const key = pick.value;
    if (!key) { chartSlot.replaceChildren(el('p', { class: 'muted' }, 'These runs have no metrics.')); return; }
    const q = new URLSearchParams(query); q.set('metric', key); setQuery(q);
    try {
      // About 50,000 buckets in all: 1,000 per run for a few runs, fewer
      // (never under 100) for many, so 100 runs stay under a few MB.
      const n = Math.max(100, Math.min(1000, Math.floor(50000 / runs.length)));
      const hist = await api.metricBuckets(runs.map(r => r.info.run_id), key, n);
      chartSlot.replaceChildren(lineChart(key, runs.map((r, i) => ({ label: name(r), ...hist[i] }))));
    } catch (err) { chartSlot.replaceChildren(errorBox(err)); }
  }
  pick.addEventListener('change', draw);
  draw();

  const params = [...new Set(runs.flatMap(r => (r.data.params || []).map(p => p.key)))].sort();
  const val = (r, k) => { const p = (r.data.params || []).find(p => p.key === k); return p ? p.value : ''; };
  const differ = params.filter(k => new Set(runs.map(r => val(r, k))).size > 1);
  page.append(el('h2', {}, 'Params that differ'), differ.length
    ? el('table', { class: 'grid diff', id: 'param-diff' },
      el('thead', {}, el('tr', {}, el('th', {}, 'Param'), runs.map(r => el('th', {}, el('a', { href: '#/runs/' + encodeURIComponent(r.info.run_id) }, name(r)))))),
      el('tbody', {}, differ.map(k => el('tr', {}, el('th', {}, k), runs.map(r => el('td', {}, val(r, k)))))))
    : el('p', { class: 'muted' }, 'All params are the same.'));
  return page;
}
