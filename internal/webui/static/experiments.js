import * as api from './api.js';
import { el, timeEl, errorBox } from './dom.js';
import { may } from './session.js';

// experimentsPage lists the active experiments with their run counts and
// last activity (the newest run start or end, or the experiment's update).
// A writer can create, rename and delete them here.
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
  const writer = await may('write');
  const reload = () => window.dispatchEvent(new HashChangeEvent('hashchange'));
  if (writer) page.append(createForm(reload));
  if (!exps.length) {
    page.append(el('p', { class: 'muted' }, 'No experiments yet. Create one here, or log a run with the MLflow client.'));
    return page;
  }
  const tbody = el('tbody');
  page.append(el('table', { class: 'grid', id: 'experiments' },
    el('thead', {}, el('tr', {}, el('th', {}, 'Name'), el('th', { class: 'num' }, 'ID'), el('th', { class: 'num' }, 'Runs'),
      el('th', {}, 'Last activity'), writer ? el('th', {}, '') : null)),
    tbody));
  for (const e of exps) {
    const count = el('td', { class: 'num' }, '…');
    const last = el('td', {}, timeEl(e.last_update_time || e.creation_time));
    const name = el('td', { class: 'name' }, el('a', { href: '#/experiments/' + encodeURIComponent(e.experiment_id) }, e.name));
    tbody.append(el('tr', { 'data-experiment': e.experiment_id }, name,
      el('td', { class: 'num' }, e.experiment_id), count, last, writer ? el('td', {}, actions(e, name, reload)) : null));
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

function createForm(done) {
  const name = el('input', { type: 'text', id: 'new-experiment', placeholder: 'new experiment name', 'aria-label': 'New experiment name' });
  const msg = el('div', { id: 'experiment-error' });
  return el('form', { class: 'toolbar', id: 'create-experiment', onsubmit: async (ev) => {
    ev.preventDefault();
    msg.replaceChildren();
    try {
      await api.createExperiment(name.value.trim());
      done();
    } catch (err) {
      msg.replaceChildren(errorBox(err));
    }
  } }, name, el('button', { type: 'submit' }, 'Create'), msg);
}

// actions: rename in place, and delete after a second click (MLflow keeps
// a deleted experiment restorable; the page says so).
function actions(e, nameCell, done) {
  const msg = el('span', { class: 'row-error' });
  const fail = (err) => msg.replaceChildren(el('span', { class: 'error', role: 'alert' }, err.message));
  const rename = el('button', { type: 'button', class: 'rename', onclick: () => {
    const input = el('input', { type: 'text', class: 'rename-input', value: e.name, 'aria-label': 'New name' });
    const form = el('form', { class: 'inline', onsubmit: async (ev) => {
      ev.preventDefault();
      try {
        await api.renameExperiment(e.experiment_id, input.value.trim());
        done();
      } catch (err) { fail(err); }
    } }, input, el('button', { type: 'submit' }, 'Save'));
    nameCell.replaceChildren(form);
    input.focus();
  } }, 'Rename');
  const del = el('button', { type: 'button', class: 'delete', onclick: async () => {
    if (del.dataset.armed !== '1') {
      del.dataset.armed = '1';
      del.textContent = 'Confirm delete';
      del.title = 'The experiment and its runs move to the trash (restorable with the MLflow API).';
      return;
    }
    try {
      await api.deleteExperiment(e.experiment_id);
      done();
    } catch (err) { fail(err); }
  } }, 'Delete');
  // MLflow's Default experiment (ID 0) cannot be deleted.
  return e.experiment_id === '0' ? [rename, msg] : [rename, ' ', del, msg];
}
