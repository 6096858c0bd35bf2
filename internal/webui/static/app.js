// The UI's router: hash routes (#/experiments/1?sort=...) so that every
// page has a URL that can be shared and reloaded with no server fallback.
import { experimentsPage } from './experiments.js';
import { runsPage } from './runs.js';
import { runPage } from './run.js';
import { comparePage } from './compare.js';
import { jobsPage, jobPage } from './jobs.js';
import { modelsPage, modelPage } from './models.js';
import { deploymentsPage, deploymentPage } from './deployments.js';
import { datasetsPage, datasetPage } from './datasets.js';
import { userBox } from './session.js';
import { el, notFound } from './dom.js';

const routes = [
  [/^\/?$/, () => experimentsPage()],
  [/^\/experiments\/([^/]+)$/, (m, q) => runsPage(decodeURIComponent(m[1]), q)],
  [/^\/runs\/([^/]+)$/, (m, q) => runPage(decodeURIComponent(m[1]), q)],
  [/^\/compare$/, (m, q) => comparePage(q)],
  [/^\/jobs$/, () => jobsPage()],
  [/^\/jobs\/([^/]+)$/, (m) => jobPage(decodeURIComponent(m[1]))],
  [/^\/models$/, () => modelsPage()],
  [/^\/models\/([^/]+)$/, (m, q) => modelPage(decodeURIComponent(m[1]), q)],
  [/^\/deployments$/, () => deploymentsPage()],
  [/^\/deployments\/([^/]+)$/, (m) => deploymentPage(decodeURIComponent(m[1]))],
  [/^\/datasets$/, () => datasetsPage()],
  [/^\/datasets\/([^/]+)$/, (m, q) => datasetPage(decodeURIComponent(m[1]), q)],
];

// parseHash splits "#/path?query" into its path and URLSearchParams.
export function parseHash() {
  const h = location.hash.replace(/^#/, '') || '/';
  const i = h.indexOf('?');
  return { path: i < 0 ? h : h.slice(0, i), query: new URLSearchParams(i < 0 ? '' : h.slice(i + 1)) };
}

// setQuery replaces the current URL's query without re-rendering the page.
export function setQuery(query) {
  const { path } = parseHash();
  const q = query.toString();
  history.replaceState(null, '', '#' + path + (q ? '?' + q : ''));
}

let current = 0;
async function render() {
  const seq = ++current;
  const main = document.getElementById('main');
  const { path, query } = parseHash();
  let node = null;
  for (const [re, page] of routes) {
    const m = path.match(re);
    if (m) { node = page(m, query); break; }
  }
  if (!node) node = notFound(`No page at ${path}.`, '#/', 'Back to experiments');
  node = await node;
  if (seq !== current) return; // a later navigation won
  main.replaceChildren(node);
  for (const a of document.querySelectorAll('.top nav a')) {
    const href = a.getAttribute('href').slice(1);
    a.classList.toggle('here', href === '/' ? path === '/' || path.startsWith('/experiments') || path.startsWith('/runs') || path === '/compare' : path.startsWith(href));
  }
  userBox(document.getElementById('user-box'));
}

window.addEventListener('hashchange', render);
render().catch(err => document.getElementById('main').replaceChildren(el('div', { class: 'error' }, String(err))));
