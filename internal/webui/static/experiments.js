import * as api from './api.js';
import { el, timeEl, errorBox } from './dom.js';

// experimentsPage lists the active experiments with their run counts and
// last activity (the newest run start or end, or the experiment's update).
export async function experimentsPage() {
  document.title = 'Experiments · Forge';
  const page = el('section', {}, el('h1', {}, 'Experiments'));
  let exps;
  try {
    exps = await api.experiments();
  } catch (err) {
    page.append(errorBox(err));
    return page;
  }
  if (!exps.length) {
    page.append(el('p', { class: 'muted' }, 'No experiments yet. Log a run with the MLflow client to create one.'));
    return page;
  }
  const tbody = el('tbody');
  page.append(el('table', { class: 'grid', id: 'experiments' },
    el('thead', {}, el('tr', {}, el('th', {}, 'Name'), el('th', { class: 'num' }, 'ID'), el('th', { class: 'num' }, 'Runs'), el('th', {}, 'Last activity'))),
    tbody));
  for (const e of exps) {
    const count = el('td', { class: 'num' }, '…');
    const last = el('td', {}, timeEl(e.last_update_time || e.creation_time));
    tbody.append(el('tr', {},
      el('td', {}, el('a', { href: '#/experiments/' + encodeURIComponent(e.experiment_id) }, e.name)),
      el('td', { class: 'num' }, e.experiment_id), count, last));
    // One page is enough: past 1,000 runs the count says "1000+".
    api.runsPage(e.experiment_id, 1000).then(({ runs = [], next_page_token: more }) => {
      count.textContent = runs.length + (more ? '+' : '');
      let t = Number(e.last_update_time || e.creation_time || 0);
      for (const r of runs) t = Math.max(t, Number(r.info.end_time || 0), Number(r.info.start_time || 0));
      last.replaceChildren(timeEl(t));
    }, err => { count.textContent = '?'; count.title = err.message; });
  }
  return page;
}
