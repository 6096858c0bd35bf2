import { post } from './api.js';
import { forget } from './session.js';

// el builds an element. Stored values only ever become text (textContent):
// nothing from the API is parsed as HTML.
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v == null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k === 'text') e.textContent = v;
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c == null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

const numFmt = new Intl.NumberFormat(undefined, { maximumSignificantDigits: 6 });
export function fmtNum(v) {
  if (v == null || v === '') return '';
  const n = Number(v);
  return Number.isFinite(n) ? numFmt.format(n) : String(v);
}

export function fmtTime(ms) {
  if (!ms) return '';
  return new Date(Number(ms)).toISOString().replace('T', ' ').slice(0, 19) + 'Z';
}

export function timeEl(ms) {
  return el('time', { title: ms ? new Date(Number(ms)).toString() : '' }, fmtTime(ms));
}

export function fmtDuration(ms) {
  if (ms == null) return '';
  const s = Math.round(ms / 1000);
  if (s < 60) return s + 's';
  if (s < 3600) return Math.floor(s / 60) + 'm ' + (s % 60) + 's';
  return Math.floor(s / 3600) + 'h ' + Math.floor((s % 3600) / 60) + 'm';
}

// errorBox shows the API's message where the action was; a 401 (auth on,
// no session) comes with a sign-in form.
export function errorBox(err) {
  const box = el('div', { class: 'error', role: 'alert' }, err && err.message ? err.message : String(err));
  if (err && err.status === 401) return el('div', {}, box, signInForm());
  return box;
}

// signInForm trades a token for the server's HttpOnly session cookie (the
// token is never kept by the page: not in the URL, not in storage).
export function signInForm() {
  const token = el('input', { type: 'password', id: 'token', autocomplete: 'current-password', 'aria-label': 'Token', placeholder: 'forge token' });
  const msg = el('div', { id: 'signin-error' });
  return el('form', { class: 'toolbar', id: 'signin', onsubmit: async (e) => {
    e.preventDefault();
    msg.replaceChildren();
    try {
      await post('/api/forge/v1/auth/session', { token: token.value });
      forget();
      window.dispatchEvent(new HashChangeEvent('hashchange')); // render the page again, now signed in
    } catch (err) {
      msg.replaceChildren(el('div', { class: 'error', role: 'alert' }, err.message));
    }
  } }, el('label', {}, 'Sign in with a token ', token), el('button', { type: 'submit' }, 'Sign in'), msg);
}

export function notFound(what, backHref, backText) {
  return el('div', { class: 'notfound' }, el('h1', {}, 'Not found'), el('p', {}, what),
    el('p', {}, el('a', { href: backHref }, backText)));
}
