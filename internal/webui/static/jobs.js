import * as api from './api.js';
import { el, timeEl, fmtDuration, errorBox, notFound } from './dom.js';
import { may } from './session.js';

const final = (s) => s === 'succeeded' || s === 'failed' || s === 'cancelled';

// jobsPage lists the newest jobs with their state, executor and attempts.
export async function jobsPage() {
  document.title = 'Jobs · Forge';
  const page = el('section', {}, el('h1', {}, 'Jobs'));
  let jobs;
  try {
    jobs = (await api.get('/api/forge/v1/jobs', { limit: 500 })).jobs || [];
  } catch (err) {
    page.append(errorBox(err));
    return page;
  }
  if (!jobs.length) {
    page.append(el('p', { class: 'muted' }, 'No jobs yet. Submit one with `forge jobs submit`.'));
    return page;
  }
  page.append(el('table', { class: 'grid', id: 'jobs' },
    el('thead', {}, el('tr', {}, ['Name', 'State', 'Executor', 'Resources', 'Attempt', 'Submitted', 'Duration'].map(h => el('th', {}, h)))),
    el('tbody', {}, jobs.map(j => el('tr', { 'data-job': j.id },
      el('td', {}, el('a', { href: '#/jobs/' + encodeURIComponent(j.id) }, j.name || j.id)),
      el('td', { class: 'state' }, j.state), el('td', {}, j.executor || ''),
      el('td', {}, resources(j.spec || {})), el('td', { class: 'num' }, String(j.attempt || 0)),
      el('td', {}, timeEl(j.submitted_at)),
      el('td', {}, j.started_at ? fmtDuration((j.finished_at || Date.now()) - j.started_at) : ''))))));
  return page;
}

function resources(s) {
  return [s.cpus && `${s.cpus} CPU`, s.memory, s.gpus && `${s.gpus} GPU`, s.nodes > 1 && `${s.nodes} nodes`].filter(Boolean).join(', ');
}

// jobPage shows one job and the tail of its log, polled while it runs.
export async function jobPage(id) {
  const page = el('section');
  let job;
  try {
    job = await api.get('/api/forge/v1/jobs/' + encodeURIComponent(id));
  } catch (err) {
    if (err.status === 404) return notFound(`Job ${id} does not exist.`, '#/jobs', 'Back to jobs');
    page.append(errorBox(err));
    return page;
  }
  document.title = (job.name || job.id) + ' · Forge';
  const state = el('span', { id: 'job-state' }, job.state);
  const log = el('pre', { id: 'job-log', class: 'log' });
  page.append(el('p', {}, el('a', { href: '#/jobs' }, '← Jobs')), el('h1', {}, job.name || job.id),
    el('p', {}, 'State: ', state, ` · executor ${job.executor || ''} · attempt ${job.attempt || 0}`,
      job.run_id ? el('span', {}, ' · run ', el('a', { href: '#/runs/' + encodeURIComponent(job.run_id) }, job.run_id)) : '',
      job.message ? ` · ${job.message}` : ''),
    el('dl', { class: 'facts' }, el('dt', {}, 'Command'), el('dd', {}, el('code', { id: 'job-command' }, (job.spec && job.spec.command || []).join(' ')))),
    el('h2', {}, 'Log'), log);
  if (!final(job.state) && await may('write')) {
    const msg = el('span', { id: 'cancel-error' });
    const cancel = el('button', { type: 'button', id: 'cancel-job', onclick: async () => {
      cancel.disabled = true;
      try {
        await api.post('/api/forge/v1/jobs/' + encodeURIComponent(id) + '/cancel');
      } catch (err) {
        cancel.disabled = false;
        msg.replaceChildren(el('span', { class: 'error', role: 'alert' }, err.message));
      }
    } }, 'Cancel job');
    page.querySelector('h1').after(el('div', { class: 'toolbar' }, cancel, msg));
  }
  const tick = async () => {
    if (!page.isConnected && log.textContent) return; // navigated away
    try {
      const resp = await fetch('/api/forge/v1/jobs/' + encodeURIComponent(id) + '/logs', { credentials: 'same-origin' });
      const text = await resp.text();
      log.textContent = text.split('\n').slice(-500).join('\n') || '(no output yet)';
      const j = await api.get('/api/forge/v1/jobs/' + encodeURIComponent(id));
      state.textContent = j.state;
      if (final(j.state)) { const b = page.querySelector('#cancel-job'); if (b) b.remove(); }
      else setTimeout(tick, 2000);
    } catch (err) {
      log.replaceChildren(errorBox(err));
    }
  };
  tick();
  return page;
}
