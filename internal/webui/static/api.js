// api calls Forge's REST API on this origin. A failed call throws an
// Error carrying the API's own message, its status and error code.
export class APIError extends Error {
  constructor(message, status, code) { super(message); this.status = status; this.code = code; }
}

export async function call(method, path, body) {
  const opts = { method, headers: {}, credentials: 'same-origin' };
  if (body !== undefined) {
    opts.headers['Content-Type'] = 'application/json';
    opts.body = JSON.stringify(body);
  }
  if (method !== 'GET' && method !== 'HEAD') opts.headers['X-Forge-CSRF'] = '1';
  const resp = await fetch(path, opts);
  const text = await resp.text();
  let data = {};
  try { data = text ? JSON.parse(text) : {}; } catch { data = { message: text }; }
  if (!resp.ok) {
    throw new APIError(data.message || data.error || `${resp.status} ${resp.statusText}`, resp.status, data.error_code);
  }
  return data;
}

export const get = (path, params) => call('GET', params ? path + '?' + new URLSearchParams(params) : path);
export const post = (path, body) => call('POST', path, body);
export const del = (path) => call('DELETE', path);

const ml = '/api/2.0/mlflow/';

export async function experiments() {
  const out = [];
  let token = '';
  do {
    const r = await post(ml + 'experiments/search', { max_results: 1000, page_token: token });
    out.push(...(r.experiments || []));
    token = r.next_page_token || '';
  } while (token);
  return out;
}

export const createExperiment = (name) => post(ml + 'experiments/create', { name });
export const renameExperiment = (id, name) => post(ml + 'experiments/update', { experiment_id: id, new_name: name });
export const deleteExperiment = (id) => post(ml + 'experiments/delete', { experiment_id: id });

export async function registeredModels() {
  const out = [];
  let token = '';
  do {
    const params = { max_results: 1000 };
    if (token) params.page_token = token;
    const r = await get(ml + 'registered-models/search', params);
    out.push(...(r.registered_models || []));
    token = r.next_page_token || '';
  } while (token);
  return out;
}

export const registeredModel = (name) => get(ml + 'registered-models/get', { name }).then(r => r.registered_model);

export async function modelVersions(name) {
  const out = [];
  let token = '';
  do {
    const params = { filter: `name='${name.replace(/'/g, "''")}'`, max_results: 1000 };
    if (token) params.page_token = token;
    const r = await get(ml + 'model-versions/search', params);
    out.push(...(r.model_versions || []));
    token = r.next_page_token || '';
  } while (token);
  return out;
}

export const experiment = (id) => get(ml + 'experiments/get', { experiment_id: id }).then(r => r.experiment);

// searchRuns reads every page of runs/search for an experiment.
export async function searchRuns(experimentIds, filter, onPage) {
  const out = [];
  let token = '';
  do {
    // A small first page shows the top of the table at once.
    const r = await post(ml + 'runs/search', { experiment_ids: experimentIds, filter: filter || '', max_results: out.length ? 1000 : 100, page_token: token });
    out.push(...(r.runs || []));
    if (onPage) onPage(out);
    token = r.next_page_token || '';
  } while (token);
  return out;
}

// runsPage reads one page of an experiment's runs, newest first.
export const runsPage = (experimentId, maxResults) => post(ml + 'runs/search',
  { experiment_ids: [experimentId], max_results: maxResults, order_by: ['attributes.start_time DESC'] });

export const run = (id) => get(ml + 'runs/get', { run_id: id }).then(r => r.run);

export async function metricHistory(runId, key) {
  const out = [];
  let token = '';
  do {
    const params = { run_id: runId, metric_key: key };
    if (token) params.page_token = token;
    const r = await get(ml + 'metrics/get-history', params);
    out.push(...(r.metrics || []));
    token = r.next_page_token || '';
  } while (token);
  return out;
}

// metricBuckets reads a metric's history of each run cut into at most n
// min/max/mean buckets by step (the server aggregates: a chart never
// downloads more points than it has pixels). Answers one history per run,
// in the order given.
export async function metricBuckets(runIds, key, n) {
  const out = [];
  for (let i = 0; i < runIds.length; i += 100) {
    const q = new URLSearchParams({ key, buckets: String(n) });
    for (const id of runIds.slice(i, i + 100)) q.append('run_id', id);
    const r = await get('/api/forge/v1/metrics/buckets?' + q);
    out.push(...(r.histories || []));
  }
  return out;
}

// metricRanges reads each active run's min and max of the metric keys of
// an experiment: [{key, run_ids, min, max}] (MLflow's runs/search gives a
// metric's last value only).
export async function metricRanges(experimentId, keys) {
  const q = new URLSearchParams({ experiment_id: experimentId });
  for (const k of keys) q.append('key', k);
  return (await get('/api/forge/v1/metrics/ranges?' + q)).ranges || [];
}

// runsByID reads many runs at once: runs/search with a run_id IN filter in
// the first run's experiment, then one by one for any found elsewhere.
// Answers them in the order given; a missing one throws its 404.
export async function runsByID(ids) {
  if (!ids.length) return [];
  const first = await run(ids[0]);
  const found = new Map([[ids[0], first]]);
  const rest = ids.slice(1);
  for (let i = 0; i < rest.length; i += 100) {
    const chunk = rest.slice(i, i + 100);
    const filter = `attributes.run_id IN (${chunk.map(id => `'${id.replace(/'/g, '')}'`).join(', ')})`;
    for (const r of await searchRuns([first.info.experiment_id], filter)) found.set(r.info.run_id, r);
  }
  for (const id of ids) if (!found.has(id)) found.set(id, await run(id));
  return ids.map(id => found.get(id));
}
