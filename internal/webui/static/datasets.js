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
  if (versions.length > 1) page.append(el('h2', {}, 'Compare with another version'), diffBox(name, chosen, versions));
  page.append(el('h2', {}, 'Query'), sqlConsole(`SELECT * FROM "${name}@${chosen}" LIMIT 100`));
  api.get(base + '/profile').then(({ profile: p }) => {
    profile.replaceChildren(el('table', { class: 'grid', id: 'columns' },
      el('thead', {}, el('tr', {}, ['Column', 'Type', 'Distribution', 'Nulls', 'Distinct', 'Min', 'p50', 'Max', 'Mean', 'Top values'].map(h => el('th', {}, h)))),
      el('tbody', {}, (p.columns || []).map(c => el('tr', { 'data-column': c.name },
        el('td', {}, c.name), el('td', { class: 'muted' }, c.type), el('td', {}, histogram(c)), el('td', { class: 'num' }, fmtNum(c.nulls)),
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

// histogram draws a column's bins (or its top values) as bars; the title
// of each bar says its range and count.
function histogram(c) {
  let bins = [];
  if (c.histogram && c.histogram.counts) {
    const e = c.histogram.edges;
    bins = c.histogram.counts.map((n, i) => [n, `${fmtNum(e[i])} – ${fmtNum(e[i + 1])}: ${n}`]);
  } else if (c.top_values) {
    bins = c.top_values.map(t => [t.count, `${t.value}: ${t.count}`]);
  }
  if (!bins.length) return '';
  const max = Math.max(...bins.map(b => b[0])) || 1;
  return el('div', { class: 'hist', role: 'img', 'aria-label': 'distribution of ' + c.name },
    bins.map(([n, title]) => { const bar = el('div', { class: 'bar', title }); bar.style.height = Math.max(2, Math.round(100 * n / max)) + '%'; return bar; }));
}

// diffBox compares this version with another: rows, schema changes, and
// per column the null fractions, means and the population stability index
// (over 0.2 is a shift worth a look, the usual rule of thumb).
function diffBox(name, chosen, versions) {
  const other = versions.find(v => String(v.version) !== chosen);
  const pick = el('select', { id: 'diff-with', 'aria-label': 'Version to compare with' },
    versions.filter(v => String(v.version) !== chosen).map(v => el('option', { value: String(v.version) }, 'v' + v.version)));
  pick.value = String(other.version);
  const out = el('div', { id: 'diff' });
  const show = async () => {
    out.replaceChildren(el('p', { class: 'muted' }, 'Comparing…'));
    try {
      const r = await api.get('/api/forge/v1/dataset-diff', { a: `${name}@${pick.value}`, b: `${name}@${chosen}` });
      const d = r.diff;
      const schema = [...(d.added || []).map(c => `+ ${c.name} ${c.type}`), ...(d.removed || []).map(c => `− ${c.name} ${c.type}`),
        ...(d.type_changed || []).map(c => `${c.name}: ${c.from || c.type_a || ''} → ${c.to || c.type_b || ''}`)];
      out.replaceChildren(el('p', {}, `v${pick.value}: ${fmtNum(d.rows_a)} rows · v${chosen}: ${fmtNum(d.rows_b)} rows`),
        schema.length ? el('ul', { id: 'schema-changes' }, schema.map(x => el('li', {}, x))) : el('p', { class: 'muted' }, 'Same columns.'),
        el('table', { class: 'grid', id: 'diff-columns' },
          el('thead', {}, el('tr', {}, ['Column', `Nulls v${pick.value}`, `Nulls v${chosen}`, `Mean v${pick.value}`, `Mean v${chosen}`, 'PSI'].map(h => el('th', {}, h)))),
          el('tbody', {}, (d.columns || []).map(c => el('tr', { 'data-column': c.name, class: c.psi != null && c.psi > 0.2 ? 'shifted' : null },
            el('td', {}, c.name), el('td', { class: 'num' }, pct(c.null_fraction_a)), el('td', { class: 'num' }, pct(c.null_fraction_b)),
            el('td', { class: 'num' }, c.mean_a != null ? fmtNum(c.mean_a) : ''), el('td', { class: 'num' }, c.mean_b != null ? fmtNum(c.mean_b) : ''),
            el('td', { class: 'num psi' }, c.psi != null ? fmtNum(c.psi) : ''))))));
    } catch (err) { out.replaceChildren(errorBox(err)); }
  };
  pick.addEventListener('change', show);
  show();
  return el('div', {}, el('div', { class: 'toolbar' }, el('label', {}, 'Compare v' + chosen + ' with ', pick)), out);
}

const pct = (f) => f == null ? '' : (100 * f).toFixed(1) + '%';

// sqlConsole runs a read-only query (POST /api/forge/v1/query, NDJSON:
// a header of columns, rows as arrays, a trailer) and shows the rows.
export function sqlConsole(initial) {
  const sql = el('textarea', { id: 'sql', rows: '4', spellcheck: 'false', 'aria-label': 'SQL query' });
  sql.value = initial;
  const out = el('div', { id: 'sql-result' });
  const go = el('button', { type: 'submit', id: 'run-sql' }, 'Run');
  const form = el('form', { class: 'sql', onsubmit: async (e) => {
    e.preventDefault();
    go.disabled = true;
    out.replaceChildren(el('p', { class: 'muted' }, 'Running…'));
    try {
      const resp = await fetch('/api/forge/v1/query', { method: 'POST', credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json', 'X-Forge-CSRF': '1' }, body: JSON.stringify({ sql: sql.value, limit: 1000 }) });
      const text = await resp.text();
      if (!resp.ok) {
        let msg = text;
        try { msg = JSON.parse(text).message || text; } catch { /* not JSON */ }
        throw new api.APIError(msg, resp.status);
      }
      const lines = text.split('\n').filter(Boolean).map(l => JSON.parse(l));
      const head = lines[0] || { columns: [] };
      const trailer = lines.length > 1 && !Array.isArray(lines[lines.length - 1]) ? lines[lines.length - 1] : {};
      const rows = lines.slice(1).filter(Array.isArray);
      const parts = [];
      if (trailer.error) parts.push(el('div', { class: 'error', role: 'alert' }, trailer.error));
      parts.push(el('p', { class: 'muted', id: 'sql-count' }, `${rows.length} row${rows.length === 1 ? '' : 's'}${trailer.truncated ? ' (cut at the limit)' : ''}`));
      parts.push(el('div', { class: 'scroll' }, el('table', { class: 'grid', id: 'sql-rows' },
        el('thead', {}, el('tr', {}, head.columns.map(c => el('th', { title: c.type }, c.name)))),
        el('tbody', {}, rows.map(r => el('tr', {}, r.map(v => el('td', { class: typeof v === 'number' ? 'num' : null }, v == null ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v)))))))));
      out.replaceChildren(...parts);
    } catch (err) {
      out.replaceChildren(errorBox(err));
    } finally { go.disabled = false; }
  } }, sql, el('div', { class: 'toolbar' }, go, el('span', { class: 'muted' }, 'Read-only DuckDB SQL; datasets are tables ("name" or "name@version").')));
  return el('div', {}, form, out);
}
