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
export async function modelPage(name) {
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
      el('tbody', {}, versions.map(v => el('tr', { 'data-version': v.version },
        el('td', { class: 'num' }, v.version),
        el('td', {}, (aliases.get(v.version) || []).map(a => el('span', { class: 'tag' }, '@' + a))),
        el('td', {}, v.current_stage || ''), el('td', {}, v.status || ''),
        el('td', {}, v.run_id ? el('a', { href: '#/runs/' + encodeURIComponent(v.run_id) }, v.run_id.slice(0, 8)) : ''),
        el('td', { class: 'muted' }, v.source || ''),
        el('td', {}, timeEl(v.creation_timestamp)))))));
  if (await may('write') && versions.length) page.append(el('h2', {}, 'Aliases'), aliasForm(name, model.aliases || [], versions));
  return page;
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
