// The log search page: filters map one to one onto GET /api/v1/logs; the
// filters live in the page URL so a search can be shared. A click on a line
// with a trace opens the request page.
import { api, $, cell, levelClass, statusClass, fmtTime, requestLink, traceRE } from './telemetry.js';
import { drawVolume } from './logs-volume.js';

const fields = ['service', 'since', 'from', 'to', 'level', 'where', 'text', 'regex'];
let cursor = '';
let shown = 0;

function fromURL() {
  const p = new URLSearchParams(location.search);
  for (const f of fields) {
    if (!p.has(f)) continue;
    if (f === 'regex') $('regex').checked = p.get(f) === '1';
    else $(f).value = p.get(f);
  }
}

function toURL() {
  const p = new URLSearchParams();
  for (const f of fields) {
    if (f === 'regex') { if ($('regex').checked) p.set('regex', '1'); continue; }
    if ($(f).value) p.set(f, $(f).value);
  }
  history.replaceState(null, '', '?' + p.toString());
}

function apiQuery() {
  const q = new URLSearchParams();
  if ($('service').value.trim()) q.set('service', $('service').value.trim());
  const from = $('from').value, to = $('to').value;
  if (from) q.set('from', new Date(from + 'Z').toISOString());
  else if ($('since').value) q.set('since', $('since').value);
  if (to) q.set('to', new Date(to + 'Z').toISOString());
  if ($('level').value) q.set('level', $('level').value);
  for (const w of $('where').value.split(',').map((s) => s.trim()).filter(Boolean)) q.append('where', w);
  const text = $('text').value;
  if (text) q.set($('regex').checked ? 'regex' : 'contains', text);
  q.set('limit', '200');
  return q;
}

function row(l) {
  const tr = document.createElement('tr');
  tr.dataset.trace = l.trace_id || '';
  cell(tr, fmtTime(l.time), 'mono');
  cell(tr, l.level, levelClass(l.level));
  cell(tr, l.service + (l.version ? '@' + l.version : ''));
  cell(tr, l.route);
  cell(tr, l.status || '', statusClass(l.status));
  cell(tr, l.duration_ms ? l.duration_ms.toFixed(1) : '');
  cell(tr, l.caller);
  cell(tr, l.merchant_id);
  cell(tr, l.cluster);
  cell(tr, l.datacenter);
  const attrs = Object.entries(l.attrs || {}).map(([k, v]) => `${k}=${v}`).join(' ');
  const msg = cell(tr, attrs ? `${l.message}  ${attrs}` : l.message, 'msg');
  msg.title = msg.textContent;
  const t = cell(tr, '', 'mono');
  if (l.trace_id) {
    const a = document.createElement('a');
    a.href = requestLink(l.trace_id);
    a.textContent = l.trace_id.slice(0, 8) + '…';
    a.className = 'trace-link';
    t.appendChild(a);
  }
  return tr;
}

const DURATION = { ms: 0.001, s: 1, m: 60, h: 3600 };

// volume draws the bars of the search's range: since → [now-since, now],
// or from/to (to defaults to now). Without any range there are no bars.
async function volume() {
  const note = $('volume-note');
  const q = apiQuery();
  const now = Date.now() / 1000;
  let from, to = now;
  if (q.has('to')) to = Date.parse(q.get('to')) / 1000;
  if (q.has('from')) from = Date.parse(q.get('from')) / 1000;
  else if (q.has('since')) {
    // since is a Go duration (15m, 1h30m, 500ms).
    const since = q.get('since');
    if (/^((\d+(\.\d+)?)(ms|s|m|h))+$/.test(since)) {
      let secs = 0;
      for (const [, n, , u] of since.matchAll(/(\d+(\.\d+)?)(ms|s|m|h)/g)) secs += parseFloat(n) * DURATION[u];
      from = now - secs;
    }
  }
  for (const k of ['since', 'from', 'to', 'limit']) q.delete(k);
  const box = $('volume');
  if (from === undefined || !(to > from)) {
    box.replaceChildren();
    delete box.dataset.total;
    note.textContent = 'volume bars need a time range: choose Since or From';
    return;
  }
  try {
    const v = await drawVolume(box, q, from, to, (a, b) => {
      // A click narrows the search to the bar's bucket.
      const local = (t) => new Date(t * 1000).toISOString().slice(0, 19);
      $('since').value = '';
      $('from').value = local(a);
      $('to').value = local(b);
      toURL();
      search(false);
    });
    note.textContent = `${v.total} matching line${v.total === 1 ? '' : 's'} in ${v.buckets} bars of ${v.width} s (click a bar to narrow the range)`;
  } catch (e) {
    note.textContent = 'volume: ' + (e.message || e);
  }
}

async function search(more) {
  if (!more) volume();
  $('error').textContent = '';
  const q = apiQuery();
  if (more && cursor) q.set('cursor', cursor);
  try {
    const res = await api('/api/v1/logs?' + q.toString());
    if (!more) { $('rows').replaceChildren(); shown = 0; }
    for (const l of res.logs) $('rows').appendChild(row(l));
    shown += res.logs.length;
    cursor = res.next || '';
    $('more').hidden = !cursor;
    $('summary').textContent = `${shown} line${shown === 1 ? '' : 's'}, newest first` + (cursor ? ' (more available)' : '') +
      ((res.warnings || []).length ? ` · warning: ${res.warnings.join('; ')}` : '');
  } catch (e) {
    $('error').textContent = e.message;
  }
}

$('rows').addEventListener('click', (ev) => {
  if (ev.target.closest('a')) return;
  const tr = ev.target.closest('tr');
  if (tr && tr.dataset.trace) location.href = requestLink(tr.dataset.trace);
});
$('search').addEventListener('submit', (ev) => { ev.preventDefault(); toURL(); search(false); });
$('more').addEventListener('click', () => search(true));
$('goto').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const id = $('trace-paste').value.trim().toLowerCase();
  if (!traceRE.test(id)) { $('error').textContent = 'a trace id is 32 hex digits, e.g. 4bf92f3577b34da6a3ce929d0e0e4736'; return; }
  location.href = requestLink(id);
});

fromURL();
search(false);
