// The request page: for one trace id, the HTTP result (from the access
// log line of the entry service), the span waterfall, and every log line
// of the trace interleaved with the spans in time order.
import { api, $, cell, levelClass, statusClass, fmtTime, requestLink, traceRE } from './telemetry.js';

const ms = (a, b) => (new Date(b) - new Date(a));

function depths(spans) {
  const parent = Object.fromEntries(spans.map((s) => [s.span_id, s.parent_id || '']));
  const memo = {};
  const depth = (id, n = 0) => {
    if (id in memo) return memo[id];
    const p = parent[id];
    const d = p && p in parent && n < 64 ? depth(p, n + 1) + 1 : 0;
    memo[id] = d;
    return d;
  };
  for (const s of spans) depth(s.span_id);
  return memo;
}

// The request's result: the access line of the root span if there is one,
// else the earliest access line.
function entryLine(res) {
  const access = res.logs.filter((l) => l.kind === 'access' || l.route);
  const root = res.spans.find((s) => !s.parent_id || !res.spans.some((p) => p.span_id === s.parent_id));
  return (root && access.find((l) => l.span_id === root.span_id)) || access[0] || null;
}

function render(res) {
  const spans = res.spans, logs = res.logs;
  const times = [...spans.map((s) => new Date(s.start)), ...logs.map((l) => new Date(l.time))];
  const ends = [...spans.map((s) => new Date(s.end)), ...logs.map((l) => new Date(l.time))];
  const t0 = new Date(Math.min(...times)), t1 = new Date(Math.max(...ends));
  const total = Math.max(t1 - t0, 1);
  const entry = entryLine(res);
  const root = spans.find((s) => !s.parent_id) || spans[0];
  const set = (id, v, cls) => { $(id).textContent = v === undefined || v === null || v === '' ? '-' : v; $(id).className = cls || ''; };
  set('s-route', entry ? `${entry.method || ''} ${entry.route}`.trim() : root ? root.name : '');
  set('s-status', entry ? entry.status : root ? root.status : '', entry ? statusClass(entry.status) : '');
  set('s-latency', entry ? `${entry.duration_ms.toFixed(2)} ms` : root ? `${ms(root.start, root.end).toFixed(2)} ms` : '');
  set('s-service', entry ? entry.service + (entry.version ? '@' + entry.version : '') : root ? root.service : '');
  set('s-caller', entry && entry.caller);
  set('s-merchant', entry && entry.merchant_id);
  set('s-cluster', entry ? entry.cluster : root && root.attrs && root.attrs['pave.cluster']);
  set('s-datacenter', entry ? entry.datacenter : root && root.attrs && root.attrs['pave.datacenter']);
  set('s-start', fmtTime(t0.toISOString()));
  $('counts').textContent = `${spans.length} span${spans.length === 1 ? '' : 's'}, ${logs.length} log line${logs.length === 1 ? '' : 's'}` +
    ((res.warnings || []).length ? ` · warning: ${res.warnings.join('; ')}` : '');

  const depth = depths(spans);
  const items = [
    ...spans.map((s) => ({ t: new Date(s.start), kind: 'span', s })),
    ...logs.map((l) => ({ t: new Date(l.time), kind: 'log', l })),
  ].sort((a, b) => a.t - b.t || (a.kind === 'span' ? -1 : 1));
  const rows = $('rows');
  rows.replaceChildren();
  for (const it of items) {
    const tr = document.createElement('tr');
    const off = it.t - t0;
    cell(tr, off.toFixed(2), 'mono');
    if (it.kind === 'span') {
      const s = it.s;
      tr.className = 'span';
      const name = cell(tr, s.name);
      name.style.paddingLeft = `${8 + 16 * (depth[s.span_id] || 0)}px`;
      const bar = cell(tr, '', 'bar');
      const b = document.createElement('div');
      b.className = 'span-bar' + (s.status === 'error' ? ' error' : '');
      b.style.left = `${(100 * off) / total}%`;
      b.style.width = `${Math.max((100 * ms(s.start, s.end)) / total, 0.3)}%`;
      b.title = `${ms(s.start, s.end).toFixed(2)} ms`;
      bar.appendChild(b);
      cell(tr, s.service);
      cell(tr, `${ms(s.start, s.end).toFixed(2)} ms` + (s.status ? ` · ${s.status}` : '') + (s.status_message ? ` · ${s.status_message}` : ''), s.status === 'error' ? 'bad' : '');
    } else {
      const l = it.l;
      tr.className = 'log' + (levelClass(l.level) === 'bad' ? ' bad-row' : '');
      const what = cell(tr, `log ${l.level}`, levelClass(l.level));
      what.style.paddingLeft = `${24 + 16 * (depth[l.span_id] || 0)}px`;
      const bar = cell(tr, '', 'bar');
      const m = document.createElement('div');
      m.className = 'log-mark';
      m.style.left = `${(100 * off) / total}%`;
      bar.appendChild(m);
      cell(tr, l.service);
      const attrs = Object.entries(l.attrs || {}).map(([k, v]) => `${k}=${v}`).join(' ');
      const access = l.route ? ` (${l.route} ${l.status} ${l.duration_ms.toFixed(2)} ms)` : '';
      cell(tr, `${l.message}${access}${attrs ? '  ' + attrs : ''}`, 'text');
    }
    rows.appendChild(tr);
  }
  $('logs-link').href = `/ui/logs.html?since=&where=${encodeURIComponent('trace_id=' + res.trace_id)}`;
  $('detail').hidden = false;
}

async function load(id) {
  $('trace-id').textContent = id;
  $('trace-paste').value = id;
  document.title = `Request ${id.slice(0, 8)} · Pave`;
  try {
    render(await api('/api/v1/traces/' + encodeURIComponent(id)));
  } catch (e) {
    $('error').textContent = e.message;
    $('detail').hidden = true;
  }
}

$('goto').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const id = $('trace-paste').value.trim().toLowerCase();
  if (!traceRE.test(id)) { $('error').textContent = 'a trace id is 32 hex digits'; return; }
  location.href = requestLink(id);
});

const id = (new URLSearchParams(location.search).get('trace') || '').toLowerCase();
if (!id) $('error').textContent = 'Paste a trace id above, or open a request from the Logs page.';
else if (!traceRE.test(id)) $('error').textContent = `"${id}" is not a trace id (32 hex digits)`;
else load(id);
