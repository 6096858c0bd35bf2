import * as api from './api.js';
import { el, timeEl, fmtNum, errorBox, notFound } from './dom.js';
import { may } from './session.js';

// deploymentsPage lists the deployments, what each serves (and its
// canary), and whether the serving side has it ready.
export async function deploymentsPage() {
  document.title = 'Deployments · Forge';
  const page = el('section', {}, el('h1', {}, 'Deployments'));
  let deps;
  try {
    deps = (await api.get('/api/forge/v1/deployments')).deployments || [];
  } catch (err) {
    page.append(errorBox(err));
    return page;
  }
  if (!deps.length) {
    page.append(el('p', { class: 'muted' }, 'No deployments yet. Create one with `forge deploy NAME MODEL@REF`.'));
    return page;
  }
  page.append(el('table', { class: 'grid', id: 'deployments' },
    el('thead', {}, el('tr', {}, ['Name', 'Model', 'Canary', 'Status', 'Serving', 'Endpoint', 'Updated'].map(h => el('th', {}, h)))),
    el('tbody', {}, deps.map(d => el('tr', { 'data-deployment': d.name },
      el('td', {}, el('a', { href: '#/deployments/' + encodeURIComponent(d.name) }, d.name)),
      el('td', {}, el('a', { href: '#/models/' + encodeURIComponent(d.model) }, d.model), '@' + d.ref),
      el('td', {}, d.canary_percent ? `${d.canary_model || d.model}@${d.canary_ref} (${d.canary_percent}%)` : ''),
      el('td', { class: 'state' }, status(d)),
      el('td', {}, targets(d)),
      el('td', {}, el('code', {}, `/v2/models/${d.name}/infer`)),
      el('td', {}, timeEl(d.updated_at)))))));
  return page;
}

function targets(d) {
  return ((d.status && d.status.targets) || []).map(t => el('div', {}, `${t.model} v${t.version}: ${t.weight}% ${t.state}`));
}

function status(d) {
  if (!d.status) return 'not served by this server';
  if (d.status.error) return el('span', { class: 'error-text', title: d.status.error }, 'error: ' + d.status.error);
  return d.status.ready ? 'ready' : 'loading';
}

// deploymentPage shows one endpoint: the versions behind it with their
// weights and state, live request rate, error rate and latency from the
// server's own /metrics, and a form that sends one OIP request.
export async function deploymentPage(name) {
  const page = el('section');
  let d;
  try {
    d = await api.get('/api/forge/v1/deployments/' + encodeURIComponent(name));
  } catch (err) {
    if (err.status === 404) return notFound(`Deployment ${name} does not exist.`, '#/deployments', 'Back to deployments');
    page.append(errorBox(err));
    return page;
  }
  document.title = name + ' · Forge';
  const stats = el('table', { class: 'grid', id: 'deployment-stats' });
  page.append(el('p', {}, el('a', { href: '#/deployments' }, '← Deployments')), el('h1', { id: 'deployment-name' }, name),
    el('p', {}, 'Serves ', el('a', { href: '#/models/' + encodeURIComponent(d.model) }, d.model), `@${d.ref}`,
      d.canary_percent ? ` · canary ${d.canary_model || d.model}@${d.canary_ref} at ${d.canary_percent}%` : '',
      ' · ', el('span', { id: 'deployment-status' }, status(d)), ' · ', el('code', {}, `POST /v2/models/${name}/infer`)),
    el('h2', {}, 'Traffic'), stats, el('p', { class: 'muted' }, 'Rates over the last 5 seconds; latency percentiles since the server started (from /metrics).'));
  let prev = null;
  const tick = async () => {
    if (!page.isConnected && prev) return;
    try {
      const m = parseMetrics(await (await fetch('/metrics', { credentials: 'same-origin' })).text());
      const cur = (d.status && d.status.targets || []).map(t => ({ t, s: statsFor(m, [name, t.model], t.version) }));
      stats.replaceChildren(el('thead', {}, el('tr', {}, ['Version', 'Weight', 'State', 'Requests', 'Req/s', 'Errors', 'Error rate', 'p50', 'p95', 'p99'].map(h => el('th', {}, h)))),
        el('tbody', {}, cur.map(({ t, s }, i) => {
          const p = prev && prev[i] ? prev[i].s : null;
          const rate = p ? (s.ok + s.fail - p.ok - p.fail) / 5 : null;
          const errs = p ? (s.fail - p.fail) / Math.max(1, s.ok + s.fail - p.ok - p.fail) : (s.ok + s.fail ? s.fail / (s.ok + s.fail) : null);
          return el('tr', { 'data-version': t.version },
            el('td', {}, `${t.model} v${t.version}`), el('td', { class: 'num' }, t.weight + '%'), el('td', {}, t.state),
            el('td', { class: 'num requests' }, fmtNum(s.ok + s.fail)), el('td', { class: 'num' }, rate == null ? '…' : fmtNum(rate)),
            el('td', { class: 'num' }, fmtNum(s.fail)), el('td', { class: 'num' }, errs == null ? '' : (100 * errs).toFixed(1) + '%'),
            ...[0.5, 0.95, 0.99].map(q => el('td', { class: 'num' }, fmtMs(quantile(s.buckets, q)))));
        })));
      prev = cur;
    } catch (err) { stats.replaceChildren(el('tbody', {}, el('tr', {}, el('td', {}, errorBox(err))))); }
    setTimeout(tick, 5000);
  };
  tick();
  if (await may('read')) page.append(el('h2', {}, 'Try it'), await tryIt(name));
  return page;
}

const fmtMs = (s) => (s == null ? '' : s < 0.001 ? (s * 1e6).toFixed(0) + ' µs' : (s * 1000).toFixed(s < 0.01 ? 2 : 1) + ' ms');

// parseMetrics reads Prometheus' text format into [{name, labels, value}].
export function parseMetrics(text) {
  const out = [];
  for (const line of text.split('\n')) {
    if (!line || line[0] === '#') continue;
    const m = line.match(/^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/);
    if (!m) continue;
    const labels = {};
    for (const [, k, v] of (m[2] || '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[k] = v.replace(/\\(.)/g, '$1');
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

// statsFor sums one version's request counters and latency histogram
// (Triton's nv_inference_* names, Forge's latency histogram); the model
// label is the endpoint or the registered model, whichever the server uses.
function statsFor(ms, models, version) {
  const mine = (x) => models.includes(x.labels.model) && x.labels.version === version;
  let ok = 0, fail = 0;
  const buckets = new Map();
  for (const x of ms) {
    if (!mine(x)) continue;
    if (x.name === 'nv_inference_request_success') ok += x.value;
    else if (x.name === 'nv_inference_request_failure') fail += x.value;
    else if (x.name === 'forge_inference_request_duration_seconds_bucket') {
      const le = x.labels.le === '+Inf' ? Infinity : Number(x.labels.le);
      buckets.set(le, (buckets.get(le) || 0) + x.value);
    }
  }
  return { ok, fail, buckets: [...buckets].sort((a, b) => a[0] - b[0]) };
}

// quantile interpolates within the histogram bucket holding the q-th
// observation, as Prometheus' histogram_quantile does.
export function quantile(buckets, q) {
  if (!buckets.length) return null;
  const total = buckets[buckets.length - 1][1];
  if (!total) return null;
  const rank = q * total;
  let lo = 0, below = 0;
  for (const [le, n] of buckets) {
    if (n >= rank) {
      if (le === Infinity) return lo;
      return lo + (le - lo) * ((rank - below) / Math.max(1, n - below));
    }
    lo = le; below = n;
  }
  return lo;
}

// tryIt builds one request from the model's metadata (a row of zeros of
// each input's shape), sends it, and shows the answer or the error.
async function tryIt(name) {
  const box = el('div', { id: 'try-it' });
  let meta;
  try {
    meta = await api.get('/v2/models/' + encodeURIComponent(name));
  } catch (err) {
    box.append(errorBox(err));
    return box;
  }
  const inputs = (meta.inputs || []).map(t => {
    const shape = (t.shape || []).map(n => (n < 0 ? 1 : n));
    const size = shape.reduce((a, b) => a * b, 1);
    return { name: t.name, datatype: t.datatype, shape, data: new Array(Math.min(size, 10000)).fill(t.datatype === 'BYTES' ? '' : t.datatype === 'BOOL' ? false : 0) };
  });
  const body = el('textarea', { id: 'try-body', rows: '8', spellcheck: 'false', 'aria-label': 'Request body' });
  body.value = JSON.stringify({ inputs }, null, 1);
  const out = el('div', { id: 'try-result' });
  const send = el('button', { type: 'submit', id: 'try-send' }, 'Send');
  box.append(el('p', { class: 'muted' }, `Inputs: ${(meta.inputs || []).map(t => `${t.name} ${t.datatype} [${(t.shape || []).join(', ')}]`).join('; ')}`),
    el('form', { class: 'sql', onsubmit: async (e) => {
      e.preventDefault();
      send.disabled = true;
      out.replaceChildren();
      try {
        let req;
        try { req = JSON.parse(body.value); } catch (err) { throw new Error('The request is not JSON: ' + err.message); }
        const r = await api.post('/v2/models/' + encodeURIComponent(name) + '/infer', req);
        out.replaceChildren(el('pre', { class: 'log', id: 'try-response' }, JSON.stringify(r, null, 1)));
      } catch (err) { out.replaceChildren(errorBox(err)); } finally { send.disabled = false; }
    } }, body, el('div', { class: 'toolbar' }, send)), out);
  return box;
}
