import * as api from './api.js';
import { el, fmtNum, timeEl, fmtDuration, errorBox, notFound } from './dom.js';
import { lineChart } from './chart.js';

function kvTable(title, rows, id) {
  return el('div', {}, el('h2', {}, title), rows.length
    ? el('table', { class: 'grid', id }, el('tbody', {}, rows.map(([k, v]) => el('tr', {}, el('th', {}, k), el('td', {}, v)))))
    : el('p', { class: 'muted' }, 'None.'));
}

// runPage shows one run: its attributes, params, metrics, tags, and a
// chart of each metric's history.
export async function runPage(runId) {
  const page = el('section');
  let run;
  try {
    run = await api.run(runId);
  } catch (err) {
    if (err.status === 404) return notFound(`Run ${runId} does not exist.`, '#/', 'Back to experiments');
    page.append(errorBox(err));
    return page;
  }
  const i = run.info, d = run.data || {};
  document.title = (i.run_name || i.run_id) + ' · Forge';
  page.append(el('p', {}, el('a', { href: '#/experiments/' + encodeURIComponent(i.experiment_id) }, '← Runs of experiment ' + i.experiment_id)),
    el('h1', { id: 'run-name' }, i.run_name || i.run_id),
    el('p', { class: 'muted' }, `${i.status} · started `, timeEl(i.start_time),
      i.end_time ? ` · took ${fmtDuration(Number(i.end_time) - Number(i.start_time))}` : '', ` · ${i.run_id}`));
  const metrics = d.metrics || [];
  page.append(el('div', { class: 'kv' },
    kvTable('Params', (d.params || []).map(p => [p.key, p.value]), 'params'),
    kvTable('Metrics (last)', metrics.map(m => [m.key, fmtNum(m.value)]), 'metrics'),
    kvTable('Tags', (d.tags || []).filter(t => !t.key.startsWith('mlflow.')).map(t => [t.key, t.value]), 'tags')));
  const charts = el('div', { id: 'charts' }, el('h2', {}, 'Charts'));
  page.append(charts);
  if (!metrics.length) charts.append(el('p', { class: 'muted' }, 'No metrics logged.'));
  for (const m of metrics) {
    const slot = el('div', {}, el('p', { class: 'muted' }, `Loading ${m.key}…`));
    charts.append(slot);
    api.metricHistory(runId, m.key).then(
      pts => slot.replaceChildren(lineChart(m.key, [{ label: m.key, points: pts }])),
      err => slot.replaceChildren(errorBox(err)));
  }
  return page;
}
