import * as api from './api.js';
import { el, timeEl, errorBox, notFound } from './dom.js';
import { may } from './session.js';

// modelsPage lists the registered models with their newest version and
// aliases.
export async function modelsPage() {
  document.title = 'Models · Forge';
  const page = el('section', {}, el('h1', {}, 'Models'));
  let models;
  try {
    models = await api.registeredModels();
  } catch (err) {
    page.append(errorBox(err));
    return page;
  }
  if (!models.length) {
    page.append(el('p', { class: 'muted' }, 'No registered models yet. Register one with `forge model register` or mlflow.register_model.'));
    return page;
  }
  page.append(el('table', { class: 'grid', id: 'models' },
    el('thead', {}, el('tr', {}, ['Name', 'Latest version', 'Aliases', 'Updated', 'Description'].map(h => el('th', {}, h)))),
    el('tbody', {}, models.map(m => el('tr', { 'data-model': m.name },
      el('td', {}, el('a', { href: '#/models/' + encodeURIComponent(m.name) }, m.name)),
      el('td', { class: 'num' }, latest(m)),
      el('td', {}, (m.aliases || []).map(a => el('span', { class: 'tag' }, `@${a.alias} → v${a.version}`))),
      el('td', {}, timeEl(m.last_updated_timestamp || m.creation_timestamp)),
      el('td', { class: 'muted' }, m.description || ''))))));
  return page;
}

function latest(m) {
  let v = 0;
  for (const l of m.latest_versions || []) v = Math.max(v, Number(l.version));
  return v ? String(v) : '';
}

// modelPage shows a model's versions: stage, aliases, the run that made
// each and where its files came from.
export async function modelPage(name, query) {
  const page = el('section');
  let model, versions;
  try {
    [model, versions] = await Promise.all([api.registeredModel(name), api.modelVersions(name)]);
  } catch (err) {
    if (err.status === 404) return notFound(`Model ${name} does not exist.`, '#/models', 'Back to models');
    page.append(errorBox(err));
    return page;
  }
  document.title = name + ' · Forge';
  const aliases = new Map();
  for (const a of model.aliases || []) {
    if (!aliases.has(a.version)) aliases.set(a.version, []);
    aliases.get(a.version).push(a.alias);
  }
  versions.sort((a, b) => Number(b.version) - Number(a.version));
  page.append(el('p', {}, el('a', { href: '#/models' }, '← Models')), el('h1', { id: 'model-name' }, name),
    model.description ? el('p', {}, model.description) : '',
    el('table', { class: 'grid', id: 'versions' },
      el('thead', {}, el('tr', {}, ['Version', 'Aliases', 'Stage', 'Status', 'Run', 'Source', 'Created'].map(h => el('th', {}, h)))),
      el('tbody', {}, versions.map(v => el('tr', { 'data-version': v.version, class: query && query.get('v') === String(v.version) ? 'sel' : null },
        el('td', { class: 'num' }, el('a', { href: `#/models/${encodeURIComponent(name)}?v=${v.version}` }, v.version)),
        el('td', {}, (aliases.get(v.version) || []).map(a => el('span', { class: 'tag' }, '@' + a))),
        el('td', {}, v.current_stage || ''), el('td', {}, v.status || ''),
        el('td', {}, v.run_id ? el('a', { href: '#/runs/' + encodeURIComponent(v.run_id) }, v.run_id.slice(0, 8)) : ''),
        el('td', { class: 'muted' }, v.source || ''),
        el('td', {}, timeEl(v.creation_timestamp)))))));
  const chosen = (query && query.get('v')) || (versions[0] && versions[0].version);
  if (chosen) page.append(await versionDetail(name, chosen));
  page.append(await usedBy(name));
  if (await may('write') && versions.length) page.append(el('h2', {}, 'Aliases'), aliasForm(name, model.aliases || [], versions));
  return page;
}

// versionDetail: a version's format, signature, files, and its lineage
// version -> run -> job -> code bundle -> dataset versions.
async function versionDetail(name, version) {
  const box = el('div', { id: 'version-detail' }, el('h2', {}, `Version ${version}`));
  let d;
  try {
    d = await api.get(`/api/forge/v1/models/${encodeURIComponent(name)}/versions/${encodeURIComponent(version)}`);
  } catch (err) {
    box.append(errorBox(err));
    return box;
  }
  const sig = d.signature;
  const tensors = (title, ts) => el('div', {}, el('h3', {}, title), ts && ts.length
    ? el('table', { class: 'grid' }, el('thead', {}, el('tr', {}, ['Name', 'Type', 'Shape'].map(h => el('th', {}, h)))),
      el('tbody', {}, ts.map(t => el('tr', {}, el('td', {}, t.name), el('td', {}, t.datatype), el('td', {}, `[${(t.shape || []).join(', ')}]`)))))
    : el('p', { class: 'muted' }, 'Not recorded.'));
  const facts = [['Format', d.format]];
  if (d.model_file) facts.push(['Model file', d.model_file]);
  if (sig && sig.onnx) facts.push(['ONNX', `IR ${sig.onnx.ir_version}, opset ${sig.onnx.opset}${sig.onnx.producer ? ', ' + sig.onnx.producer : ''}`]);
  if (sig && sig.xgboost) facts.push(['XGBoost', `${sig.xgboost.objective}, ${sig.xgboost.num_features} features, ${sig.xgboost.num_trees} trees`]);
  box.append(el('dl', { class: 'facts' }, facts.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)])),
    el('div', { class: 'kv', id: 'signature' }, tensors('Inputs', sig && sig.inputs), tensors('Outputs', sig && sig.outputs)));
  // Lineage, read step by step: each link is followed only if it exists.
  const chain = el('ol', { class: 'lineage', id: 'model-lineage' }, el('li', {}, `${name} v${version}`));
  box.append(el('h3', {}, 'Lineage'), chain);
  const runId = d.lineage && d.lineage.run_id;
  if (!runId) { chain.append(el('li', { class: 'muted' }, `from ${d.lineage ? d.lineage.source : 'files uploaded directly'}`)); return box; }
  chain.append(el('li', {}, 'run ', el('a', { href: '#/runs/' + encodeURIComponent(runId) }, runId)));
  try {
    const run = await api.run(runId);
    const tags = new Map((run.data.tags || []).map(t => [t.key, t.value]));
    const jobId = tags.get('forge.job_id');
    if (jobId) {
      chain.append(el('li', {}, 'job ', el('a', { href: '#/jobs/' + encodeURIComponent(jobId) }, jobId)));
      try {
        const job = await api.get('/api/forge/v1/jobs/' + encodeURIComponent(jobId));
        if (job.spec && job.spec.code) chain.append(el('li', {}, 'code bundle ', el('code', {}, 'sha256:' + job.spec.code.slice(0, 12))));
      } catch { /* the job may be gone */ }
    }
    const inputs = [...tags].filter(([k]) => k.startsWith('forge.input.')).map(([, v]) => v.split(' ')[0]);
    for (const ref of inputs) {
      const [ds, ver] = ref.split('@');
      chain.append(el('li', {}, 'dataset ', el('a', { href: `#/datasets/${encodeURIComponent(ds)}${ver ? '?v=' + encodeURIComponent(ver) : ''}` }, ref)));
    }
  } catch (err) { chain.append(el('li', {}, errorBox(err))); }
  return box;
}

// usedBy lists the deployments that serve a version of this model.
async function usedBy(name) {
  const box = el('div', { id: 'model-deployments' }, el('h2', {}, 'Deployments'));
  try {
    const deps = ((await api.get('/api/forge/v1/deployments')).deployments || [])
      .filter(d => d.model === name || d.canary_model === name);
    box.append(deps.length ? el('ul', {}, deps.map(d => el('li', {}, el('a', { href: '#/deployments/' + encodeURIComponent(d.name) }, d.name),
      ` serves @${d.ref}` + (d.status && d.status.targets ? ' (' + d.status.targets.map(t => `v${t.version} ${t.weight}%`).join(', ') + ')' : ''))))
      : el('p', { class: 'muted' }, 'No deployment serves this model.'));
  } catch (err) { box.append(errorBox(err)); }
  return box;
}

// aliasForm points an alias (new or existing) at a version, after a second
// click that says what moves: deployments following the alias switch.
function aliasForm(name, aliases, versions) {
  const alias = el('input', { type: 'text', id: 'alias-name', placeholder: 'alias, e.g. champion', 'aria-label': 'Alias',
    list: 'alias-list' });
  const list = el('datalist', { id: 'alias-list' }, aliases.map(a => el('option', { value: a.alias })));
  const version = el('select', { id: 'alias-version', 'aria-label': 'Version' }, versions.map(v => el('option', { value: v.version }, 'v' + v.version)));
  const msg = el('div', { id: 'alias-msg' });
  const go = el('button', { type: 'submit', id: 'alias-move' }, 'Set alias');
  const reset = () => { delete go.dataset.armed; go.textContent = 'Set alias'; };
  alias.addEventListener('input', reset);
  version.addEventListener('change', reset);
  return el('form', { class: 'toolbar', id: 'alias-form', onsubmit: async (e) => {
    e.preventDefault();
    msg.replaceChildren();
    const a = alias.value.trim();
    if (!a) return;
    const current = aliases.find(x => x.alias === a);
    if (go.dataset.armed !== '1') {
      go.dataset.armed = '1';
      go.textContent = current ? `Move @${a} from v${current.version} to v${version.value}?` : `Create @${a} at v${version.value}?`;
      return;
    }
    try {
      await api.post('/api/2.0/mlflow/registered-models/alias', { name, alias: a, version: version.value });
      window.dispatchEvent(new HashChangeEvent('hashchange'));
    } catch (err) {
      reset();
      msg.replaceChildren(errorBox(err));
    }
  } }, el('label', {}, 'Point ', alias, list), el('label', {}, ' at ', version), go, msg);
}
