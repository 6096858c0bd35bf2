import * as api from './api.js';
import { el, fmtNum, timeEl, fmtDuration, errorBox, notFound } from './dom.js';
import { lineChart } from './chart.js';
import { artifactBrowser } from './artifacts.js';

// BUCKETS is how many min/max/mean buckets a chart asks the server for.
const BUCKETS = 1000;

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
  page.append(lineage(run));
  const charts = el('div', { id: 'charts' }, el('h2', {}, 'Charts'));
  page.append(charts);
  page.append(el('h2', {}, 'Artifacts'), artifactBrowser(run));
  if (!metrics.length) charts.append(el('p', { class: 'muted' }, 'No metrics logged.'));
  const drawn = [];
  for (const m of metrics) {
    const slot = el('div', { 'data-metric': m.key }, el('p', { class: 'muted' }, `Loading ${m.key}…`));
    charts.append(slot);
    api.metricBuckets([runId], m.key, BUCKETS).then(
      ([h]) => { const c = lineChart(m.key, [{ label: m.key, ...h }]); drawn.push([m.key, c]); slot.replaceChildren(c); },
      err => slot.replaceChildren(errorBox(err)));
  }
  // A running run's charts follow it until it ends or the page is left.
  if (i.status === 'RUNNING') {
    const follow = async () => {
      if (!page.isConnected && drawn.length) return;
      try {
        const r = await api.run(runId);
        for (const [key, c] of drawn) c.update(await api.metricBuckets([runId], key, BUCKETS).then(([h]) => [{ label: key, ...h }]));
        if (r.info.status === 'RUNNING') setTimeout(follow, 3000);
      } catch { setTimeout(follow, 10000); }
    };
    setTimeout(follow, 3000);
  }
  return page;
}

// lineage: the datasets the run read (the versions Forge's job recorded,
// else MLflow's dataset inputs), the job that ran it, and the model
// versions registered from it.
function lineage(run) {
  const tags = new Map((run.data.tags || []).map(t => [t.key, t.value]));
  const box = el('div', { class: 'kv', id: 'lineage' });
  const inputs = [];
  for (const [k, v] of tags) {
    if (!k.startsWith('forge.input.')) continue;
    const ref = v.split(' ')[0]; // NAME@VERSION sha256:...
    const [name, ver] = ref.split('@');
    inputs.push(el('li', {}, k.slice(12) + ': ', el('a', { href: `#/datasets/${encodeURIComponent(name)}${ver ? '?v=' + encodeURIComponent(ver) : ''}` }, ref)));
  }
  if (!inputs.length) {
    for (const d of (run.inputs && run.inputs.dataset_inputs) || []) {
      const ds = d.dataset || {};
      inputs.push(el('li', {}, el('a', { href: '#/datasets/' + encodeURIComponent(ds.name || '') }, ds.name || '?'),
        ds.digest ? el('span', { class: 'muted' }, ' ' + String(ds.digest).slice(0, 12)) : ''));
    }
  }
  box.append(el('div', {}, el('h2', {}, 'Inputs'), inputs.length ? el('ul', { id: 'inputs' }, inputs) : el('p', { class: 'muted' }, 'None recorded.')));
  const job = tags.get('forge.job_id');
  box.append(el('div', {}, el('h2', {}, 'Job'), job ? el('p', {}, el('a', { href: '#/jobs/' + encodeURIComponent(job), id: 'run-job' }, job))
    : el('p', { class: 'muted' }, 'Not run by a Forge job.')));
  const models = el('div', {}, el('h2', {}, 'Models'), el('p', { class: 'muted' }, '…'));
  box.append(models);
  api.get('/api/2.0/mlflow/model-versions/search', { filter: `run_id='${run.info.run_id}'`, max_results: 100 }).then(r => {
    const vs = r.model_versions || [];
    models.replaceChildren(el('h2', {}, 'Models'), vs.length ? el('ul', { id: 'run-models' }, vs.map(v => el('li', {},
      el('a', { href: '#/models/' + encodeURIComponent(v.name) }, `${v.name} v${v.version}`))))
      : el('p', { class: 'muted' }, 'No model version registered from this run.'));
  }, err => models.replaceChildren(el('h2', {}, 'Models'), errorBox(err)));
  return box;
}
