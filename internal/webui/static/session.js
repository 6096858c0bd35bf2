// session knows who the page acts as (GET whoami, once per page load) so
// that pages offer only the actions the caller's role allows; the server
// still checks every call.
import { get, call } from './api.js';
import { el } from './dom.js';

let who = null;

// whoami answers {name, role, auth}; an unreachable server counts as a
// reader, so no write button is offered on a guess.
export async function whoami() {
  if (!who) who = get('/api/forge/v1/auth/whoami').catch(() => ({ name: '', role: 'read', auth: true }));
  return who;
}

const rank = { read: 1, write: 2, admin: 3 };

// may says whether the caller's role reaches the one given.
export async function may(role) {
  const w = await whoami();
  return (rank[w.role] || 0) >= rank[role];
}

// forget drops what is known, after signing in or out.
export function forget() { who = null; }

// userBox fills the header: who is signed in and a sign-out button, when
// the server checks tokens.
export async function userBox(box) {
  const w = await whoami();
  if (!w.auth || !w.name) { box.replaceChildren(); return; }
  box.replaceChildren(el('span', { id: 'user', class: 'muted' }, `${w.name} (${w.role})`),
    el('button', { id: 'signout', type: 'button', onclick: async () => {
      await call('DELETE', '/api/forge/v1/auth/session');
      forget();
      window.dispatchEvent(new HashChangeEvent('hashchange'));
    } }, 'Sign out'));
}
