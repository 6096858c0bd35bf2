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

export function errorBox(err) {
  return el('div', { class: 'error', role: 'alert' }, err && err.message ? err.message : String(err));
}

export function notFound(what, backHref, backText) {
  return el('div', { class: 'notfound' }, el('h1', {}, 'Not found'), el('p', {}, what),
    el('p', {}, el('a', { href: backHref }, backText)));
}
