import * as api from './api.js';
import { el, timeEl, fmtNum, errorBox, notFound } from './dom.js';

// datasetsPage lists the datasets with their newest version's size.
export async function datasetsPage() {
  document.title = 'Datasets · Forge';
  const page = el('section', {}, el('h1', {}, 'Datasets'));
  let ds;
  try {
    ds = (await api.get('/api/forge/v1/datasets')).datasets || [];
  } catch (err) {
    page.append(errorBox(err));
    return page;
  }
  if (!ds.length) {
    page.append(el('p', { class: 'muted' }, 'No datasets yet. Add one with `forge data add NAME FILE`.'));
    return page;
  }
  page.append(el('table', { class: 'grid', id: 'datasets' },
    el('thead', {}, el('tr', {}, el('th', {}, 'Name'), el('th', { class: 'num' }, 'Versions'), el('th', { class: 'num' }, 'Rows'),
      el('th', { class: 'num' }, 'Columns'), el('th', { class: 'num' }, 'Size'), el('th', {}, 'Updated'))),
    el('tbody', {}, ds.map(d => el('tr', { 'data-dataset': d.name },
      el('td', {}, el('a', { href: '#/datasets/' + encodeURIComponent(d.name) }, d.name)),
      el('td', { class: 'num' }, String(d.versions)), el('td', { class: 'num' }, fmtNum(d.latest.rows)),
      el('td', { class: 'num' }, String((d.latest.columns || []).length)), el('td', { class: 'num' }, fmtBytes(d.latest.bytes)),
      el('td', {}, timeEl(d.updated_at)))))));
  return page;
}

export function fmtBytes(n) {
  if (n == null) return '';
  const u = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = Number(n);
  while (v >= 1000 && i < u.length - 1) { v /= 1000; i++; }
  return (i ? v.toFixed(1) : String(v)) + ' ' + u[i];
}

// datasetPage shows a dataset's versions and, for the chosen one (?v=N,
// newest by default), its columns with their profile and the runs that
// used it.
export async function datasetPage(name, query) {
  const page = el('section');
  let versions;
  try {
    versions = (await api.get('/api/forge/v1/datasets/' + encodeURIComponent(name) + '/versions')).versions || [];
  } catch (err) {
    if (err.status === 404) return notFound(`Dataset ${name} does not exist.`, '#/datasets', 'Back to datasets');
    page.append(errorBox(err));
    return page;
  }
  if (!versions.length) return notFound(`Dataset ${name} has no versions.`, '#/datasets', 'Back to datasets');
  document.title = name + ' · Forge';
  versions.sort((a, b) => b.version - a.version);
  const chosen = query.get('v') || String(versions[0].version);
  const base = '/api/forge/v1/datasets/' + encodeURIComponent(name) + '/versions/' + encodeURIComponent(chosen);
  page.append(el('p', {}, el('a', { href: '#/datasets' }, '← Datasets')), el('h1', { id: 'dataset-name' }, `${name} v${chosen}`),
    el('table', { class: 'grid', id: 'dataset-versions' },
      el('thead', {}, el('tr', {}, el('th', { class: 'num' }, 'Version'), el('th', { class: 'num' }, 'Rows'), el('th', { class: 'num' }, 'Size'),
        el('th', {}, 'Source'), el('th', {}, 'Created'), el('th', {}, 'By'))),
      el('tbody', {}, versions.map(v => el('tr', { class: String(v.version) === chosen ? 'sel' : null },
        el('td', { class: 'num' }, el('a', { href: `#/datasets/${encodeURIComponent(name)}?v=${v.version}` }, String(v.version))),
        el('td', { class: 'num' }, fmtNum(v.rows)), el('td', { class: 'num' }, fmtBytes(v.bytes)),
        el('td', { class: 'muted' }, v.source || ''), el('td', {}, timeEl(v.created_at)), el('td', {}, v.created_by || ''))))));
  const profile = el('div', { id: 'profile' }, el('p', { class: 'muted' }, 'Profiling…'));
  const usedBy = el('div', { id: 'used-by' });
  page.append(el('h2', {}, 'Columns'), profile, el('h2', {}, 'Used by runs'), usedBy);
  api.get(base + '/profile').then(({ profile: p }) => {
    profile.replaceChildren(el('table', { class: 'grid', id: 'columns' },
      el('thead', {}, el('tr', {}, ['Column', 'Type', 'Nulls', 'Distinct', 'Min', 'p50', 'Max', 'Mean', 'Top values'].map(h => el('th', {}, h)))),
      el('tbody', {}, (p.columns || []).map(c => el('tr', { 'data-column': c.name },
        el('td', {}, c.name), el('td', { class: 'muted' }, c.type), el('td', { class: 'num' }, fmtNum(c.nulls)),
        el('td', { class: 'num' }, fmtNum(c.approx_distinct)), el('td', { class: 'num' }, fmtNum(c.min)),
        el('td', { class: 'num' }, c.quantiles ? fmtNum(c.quantiles.p50) : ''), el('td', { class: 'num' }, fmtNum(c.max)),
        el('td', { class: 'num' }, c.mean != null ? fmtNum(c.mean) : ''),
        el('td', { class: 'muted' }, (c.top_values || []).slice(0, 3).map(t => `${t.value} (${t.count})`).join(', ')))))));
  }, err => profile.replaceChildren(errorBox(err)));
  api.get(base).then(({ runs = [] }) => {
    usedBy.replaceChildren(runs.length ? el('ul', {}, runs.map(r => el('li', {},
      el('a', { href: '#/runs/' + encodeURIComponent(r.run_id) }, r.run_name || r.run_id), r.context ? ` (${r.context})` : '')))
      : el('p', { class: 'muted' }, 'No run has logged this version as an input.'));
  }, err => usedBy.replaceChildren(errorBox(err)));
  return page;
}
