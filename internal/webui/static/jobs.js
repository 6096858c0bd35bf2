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
    el('h2', {}, 'Attempts'), attemptsTable(job));
  // A job of several processes (nodes x procs_per_node, DDP's ranks): each
  // process's place and what it wrote, read from the log's [rank] prefixes.
  const world = Math.max(1, (job.spec && job.spec.nodes) || 1) * Math.max(1, (job.spec && job.spec.procs_per_node) || 1);
  const perRank = new Map();
  let procs = null;
  if (world > 1) {
    procs = el('div', { id: 'processes' });
    page.append(el('h2', {}, 'Processes'), procs);
    procs.replaceChildren(processesTable(job, world, perRank));
  }
  page.append(el('h2', {}, 'Log'), log);
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
  // The log is followed as a stream (?follow=true): lines show as the job
  // writes them, only the last 500 are kept, and the stream ends with the
  // job. The state and attempts are polled beside it.
  const ctl = new AbortController();
  const tail = [];
  let partial = '';
  let shown = false;
  let ended = false; // the log stream ended: so did the job
  const show = () => {
    if (shown) return;
    shown = true;
    requestAnimationFrame(() => {
      shown = false;
      log.textContent = [...tail, partial].join('\n').replace(/\n$/, '') || (ended || final(job.state) ? '(no output)' : '(no output yet)');
      if (procs) procs.replaceChildren(processesTable(job, world, perRank));
    });
  };
  const follow = async () => {
    try {
      const resp = await fetch('/api/forge/v1/jobs/' + encodeURIComponent(id) + '/logs?follow=true', { credentials: 'same-origin', signal: ctl.signal });
      if (!resp.ok) throw new api.APIError(`${resp.status} ${resp.statusText}: ${await resp.text()}`, resp.status);
      const reader = resp.body.getReader();
      const dec = new TextDecoder();
      show();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) { ended = true; show(); break; }
        const lines = (partial + dec.decode(value, { stream: true })).split('\n');
        partial = lines.pop();
        tail.push(...lines);
        if (procs) {
          for (const line of lines) {
            const m = /^\S+ \[(\d+)\] ?(.*)$/.exec(line);
            if (!m) continue;
            const p = perRank.get(m[1]) || { lines: 0, last: '' };
            p.lines++; p.last = m[2];
            perRank.set(m[1], p);
          }
        }
        if (tail.length > 500) tail.splice(0, tail.length - 500);
        show();
      }
    } catch (err) {
      if (err.name !== 'AbortError') log.replaceChildren(errorBox(err));
    }
  };
  let attached = false;
  const tick = async () => {
    if (page.isConnected) attached = true;
    else if (attached) { ctl.abort(); return; } // navigated away
    try {
      const j = await api.get('/api/forge/v1/jobs/' + encodeURIComponent(id));
      state.textContent = j.state;
      job = j;
      if (procs) procs.replaceChildren(processesTable(job, world, perRank));
      const at = page.querySelector('#attempts');
      if (at) at.replaceWith(attemptsTable(j));
      if (final(j.state)) { const b = page.querySelector('#cancel-job'); if (b) b.remove(); show(); }
      else setTimeout(tick, 2000);
    } catch (err) {
      setTimeout(tick, 5000);
    }
  };
  follow();
  tick();
  return page;
}

// processesTable: each process of the latest attempt. Where the executor
// reports them (the local executor: job.processes, with node, PID and the
// exit each process's shim recorded), those; otherwise rank, node and
// local rank as the executor numbers them (rank = node x procs_per_node +
// local rank) and how the attempt ended (the first process to fail): every
// process exited 0 when it succeeded; when it failed, the rank named in
// its message is the one, if it names one. Lines and the last line are
// read from the log's [rank] prefixes.
function processesTable(job, world, perRank) {
  const ppn = Math.max(1, (job.spec && job.spec.procs_per_node) || 1);
  const known = new Map((job.processes || []).map(p => [p.rank, p]));
  const named = /rank (\d+)/.exec(job.message || '');
  const exit = (rank) => {
    const p = known.get(rank);
    if (p) {
      if (p.state === 'running') return 'running';
      if (p.state === 'lost') return 'lost';
      return p.signal ? `signal ${p.signal}` : String(p.exit_code);
    }
    if (job.state === 'succeeded') return '0';
    if (!final(job.state)) return '';
    return named && Number(named[1]) === rank && job.exit_code != null ? String(job.exit_code) : '';
  };
  const rows = [];
  for (let r = 0; r < Math.min(world, 1024); r++) {
    const p = perRank.get(String(r)) || { lines: 0, last: '' };
    const k = known.get(r);
    rows.push(el('tr', { 'data-rank': String(r) }, el('td', { class: 'num' }, String(r)),
      el('td', { class: 'num' }, k && k.node ? k.node : String(Math.floor(r / ppn))),
      el('td', { class: 'num' }, String(r % ppn)), el('td', { class: 'num' }, k && k.pid ? String(k.pid) : ''),
      el('td', { class: 'num' }, String(p.lines)), el('td', { class: 'num', title: k && k.message ? k.message : '' }, exit(r)),
      el('td', { class: 'last-line' }, el('code', {}, p.last))));
  }
  const ended = final(job.state) && job.state !== 'succeeded';
  return el('div', {}, el('table', { class: 'grid' },
    el('thead', {}, el('tr', {}, ['Rank', 'Node', 'Local rank', 'PID', 'Lines', 'Exit', 'Last line'].map(h => el('th', {}, h)))),
    el('tbody', {}, rows)),
  ended && !known.size ? el('p', { class: 'muted' }, `The attempt ended with ${job.exit_code == null ? 'no exit code' : 'exit ' + job.exit_code}${job.message ? ' (' + job.message + ')' : ''}: the first process to fail. Executor ${job.executor || ''} does not report each process's exit.`) : null,
  ended && known.size ? el('p', { class: 'muted' }, `The attempt ended with ${job.exit_code == null ? 'no exit code' : 'exit ' + job.exit_code}${job.message ? ' (' + job.message + ')' : ''}; each process's exit as executor ${job.executor || ''} recorded it.`) : null);
}

// attemptsTable: each try at the job, its executor, times, exit and why.
function attemptsTable(job) {
  const rows = job.attempts || [];
  if (!rows.length) return el('p', { class: 'muted', id: 'attempts' }, 'Not started yet.');
  return el('table', { class: 'grid', id: 'attempts' },
    el('thead', {}, el('tr', {}, ['Attempt', 'Executor', 'Started', 'Took', 'Exit', 'Reason', 'Message'].map(h => el('th', {}, h)))),
    el('tbody', {}, rows.map(a => el('tr', { 'data-attempt': String(a.attempt) },
      el('td', { class: 'num' }, String(a.attempt)), el('td', {}, a.executor || ''), el('td', {}, timeEl(a.started_at)),
      el('td', {}, a.started_at ? fmtDuration((a.finished_at || Date.now()) - a.started_at) : ''),
      el('td', { class: 'num' }, a.exit_code == null ? '' : String(a.exit_code)), el('td', {}, a.reason || ''),
      el('td', { class: 'muted' }, a.message || '')))));
}
