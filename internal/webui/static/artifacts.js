import * as api from './api.js';
import { el, fmtNum, errorBox } from './dom.js';
import { fmtBytes } from './datasets.js';

// artifactURL is where a run's file downloads: the artifact proxy for
// mlflow-artifacts: roots, MLflow's own get-artifact path otherwise.
export function artifactURL(run, path) {
  const uri = run.info.artifact_uri || '';
  if (uri.startsWith('mlflow-artifacts:')) {
    let root = uri.slice('mlflow-artifacts:'.length);
    if (root.startsWith('//')) { const i = root.indexOf('/', 2); root = i < 0 ? '' : root.slice(i); } // drop host:port
    root = root.replace(/^\/+/, '');
    return '/api/2.0/mlflow-artifacts/artifacts/' + [root, path].map(p => p.split('/').map(encodeURIComponent).join('/')).join('/');
  }
  return '/get-artifact?' + new URLSearchParams({ path, run_uuid: run.info.run_id });
}

const MAX_PREVIEW = 1 << 20; // bytes of a file shown in the page

// artifactBrowser lists a run's files as a tree (folders open on click)
// and previews the chosen file: text and JSON as text, CSV as a table,
// images as images; every file has a download link. File names and
// contents are data: they only ever become text or a blob: image.
export function artifactBrowser(run) {
  const tree = el('ul', { class: 'tree', id: 'artifact-tree' });
  const preview = el('div', { class: 'preview', id: 'artifact-preview' }, el('p', { class: 'muted' }, 'Choose a file.'));
  const box = el('div', { class: 'artifacts' }, tree, preview);
  const list = async (path, into) => {
    try {
      const params = { run_id: run.info.run_id };
      if (path) params.path = path;
      const r = await api.get('/api/2.0/mlflow/artifacts/list', params);
      const files = (r.files || []).sort((a, b) => (b.is_dir - a.is_dir) || a.path.localeCompare(b.path));
      if (!files.length && !path) { box.replaceChildren(el('p', { class: 'muted', id: 'artifact-tree' }, 'No artifacts.')); return; }
      into.replaceChildren(...files.map(f => {
        const name = f.path.split('/').pop();
        if (f.is_dir) {
          const sub = el('ul', { hidden: true });
          const btn = el('button', { type: 'button', class: 'link dir', 'aria-expanded': 'false', 'data-path': f.path, onclick: () => {
            sub.hidden = !sub.hidden;
            btn.setAttribute('aria-expanded', String(!sub.hidden));
            if (!sub.hidden && !sub.childElementCount) list(f.path, sub);
          } }, name + '/');
          return el('li', {}, btn, sub);
        }
        return el('li', {}, el('button', { type: 'button', class: 'link file', 'data-path': f.path, onclick: () => show(f, preview) }, name),
          el('span', { class: 'muted' }, ' ' + fmtBytes(f.file_size)));
      }));
    } catch (err) { into.replaceChildren(el('li', {}, errorBox(err))); }
  };
  const show = async (f, into) => {
    const url = artifactURL(run, f.path);
    const head = el('div', { class: 'toolbar' }, el('strong', {}, f.path), el('a', { href: url, download: f.path.split('/').pop(), id: 'artifact-download' }, 'Download'));
    into.replaceChildren(head, el('p', { class: 'muted' }, 'Loading…'));
    const ext = (f.path.split('.').pop() || '').toLowerCase();
    try {
      if (f.file_size > MAX_PREVIEW && !['png', 'jpg', 'jpeg', 'gif', 'webp'].includes(ext)) {
        into.replaceChildren(head, el('p', { class: 'muted' }, `${fmtBytes(f.file_size)}: too large to show here.`));
        return;
      }
      const resp = await fetch(url, { credentials: 'same-origin' });
      if (!resp.ok) throw new api.APIError(`${resp.status} ${resp.statusText}`, resp.status);
      if (['png', 'jpg', 'jpeg', 'gif', 'webp', 'svg'].includes(ext)) {
        const type = ext === 'svg' ? 'image/svg+xml' : 'image/' + (ext === 'jpg' ? 'jpeg' : ext);
        const blob = new Blob([await resp.arrayBuffer()], { type });
        into.replaceChildren(head, el('img', { src: URL.createObjectURL(blob), alt: f.path, class: 'artifact-img' }));
        return;
      }
      const text = await resp.text();
      if (ext === 'csv' || ext === 'tsv') { into.replaceChildren(head, csvTable(text, ext === 'tsv' ? '\t' : ',')); return; }
      let shown = text;
      if (ext === 'json') { try { shown = JSON.stringify(JSON.parse(text), null, 2); } catch { /* shown as is */ } }
      if (!['json', 'txt', 'log', 'md', 'yaml', 'yml', 'py', 'csv', 'html', 'xml', 'toml', 'cfg', 'ini', 'sh', ''].includes(ext) && /[\x00-\x08\x0e-\x1f]/.test(text.slice(0, 4096))) {
        into.replaceChildren(head, el('p', { class: 'muted' }, `${fmtBytes(f.file_size)} of binary data.`));
        return;
      }
      into.replaceChildren(head, el('pre', { class: 'log', id: 'artifact-text' }, shown));
    } catch (err) { into.replaceChildren(head, errorBox(err)); }
  };
  list('', tree);
  return box;
}

// csvTable shows the first 100 rows of a CSV (quotes handled).
function csvTable(text, sep) {
  const rows = [];
  let row = [], cell = '', q = false;
  for (let i = 0; i < text.length && rows.length <= 100; i++) {
    const ch = text[i];
    if (q) {
      if (ch === '"' && text[i + 1] === '"') { cell += '"'; i++; } else if (ch === '"') q = false; else cell += ch;
    } else if (ch === '"') q = true;
    else if (ch === sep) { row.push(cell); cell = ''; }
    else if (ch === '\n' || ch === '\r') {
      if (ch === '\r' && text[i + 1] === '\n') i++;
      row.push(cell); rows.push(row); row = []; cell = '';
    } else cell += ch;
  }
  if (cell || row.length) { row.push(cell); rows.push(row); }
  const [header = [], ...body] = rows;
  return el('div', { class: 'scroll' }, el('table', { class: 'grid', id: 'artifact-csv' },
    el('thead', {}, el('tr', {}, header.map(h => el('th', {}, h)))),
    el('tbody', {}, body.slice(0, 100).map(r => el('tr', {}, r.map(v => el('td', { class: v !== '' && Number.isFinite(Number(v)) ? 'num' : null }, v !== '' && Number.isFinite(Number(v)) ? fmtNum(v) : v)))))));
}
