import * as api from './api.js';
import { el, timeEl, errorBox } from './dom.js';

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
      el('td', {}, d.name),
      el('td', {}, el('a', { href: '#/models/' + encodeURIComponent(d.model) }, d.model), '@' + d.ref),
      el('td', {}, d.canary_percent ? `${d.canary_model || d.model}@${d.canary_ref} (${d.canary_percent}%)` : ''),
      el('td', { class: 'state' }, status(d)),
      el('td', {}, ((d.status && d.status.targets) || []).map(t => el('div', {}, `${t.model} v${t.version}: ${t.weight}% ${t.state}`))),
      el('td', {}, el('code', {}, `/v2/models/${d.name}/infer`)),
      el('td', {}, timeEl(d.updated_at)))))));
  return page;
}

function status(d) {
  if (!d.status) return 'not served here';
  if (d.status.error) return el('span', { class: 'error-text', title: d.status.error }, 'error: ' + d.status.error);
  return d.status.ready ? 'ready' : 'loading';
}
