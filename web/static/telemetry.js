// Shared by the logs and request pages: API access with the stored token
// and small formatting helpers.

// A token handed over in the address (#token=…) is kept for this browser
// and taken out of the address bar.
if (location.hash.startsWith('#token=')) {
  localStorage.setItem('pave.token', decodeURIComponent(location.hash.slice('#token='.length)));
  history.replaceState(null, '', location.pathname + location.search);
}

export async function api(path) {
  const headers = {};
  const token = localStorage.getItem('pave.token');
  if (token) headers.Authorization = 'Bearer ' + token;
  const resp = await fetch(path, { headers });
  const body = await resp.json().catch(() => ({}));
  if (!resp.ok) {
    const where = body.field ? ` (${body.field})` : '';
    throw new Error((body.error || `GET ${path}: ${resp.status}`) + where);
  }
  return body;
}

export const $ = (id) => document.getElementById(id);

export function cell(tr, text, cls) {
  const td = document.createElement('td');
  td.textContent = text === undefined || text === null ? '' : String(text);
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
}

export function levelClass(level) {
  return { ERROR: 'bad', FATAL: 'bad', WARN: 'warn' }[level] || '';
}

export function statusClass(status) {
  if (!status) return '';
  if (status >= 500) return 'bad';
  if (status >= 400) return 'warn';
  return 'ok';
}

export function fmtTime(iso) {
  const d = new Date(iso);
  return d.toISOString().replace('T', ' ').replace('Z', '');
}

export function requestLink(traceID) {
  return `/ui/request.html?trace=${encodeURIComponent(traceID)}`;
}

export const traceRE = /^[0-9a-f]{32}$/;
