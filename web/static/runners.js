// The runners page: every pool's runners (current, desired, busy, idle),
// its queue and the active schedule window, the budget used today
// (GET /api/v1/runnerpools); for the selected pool (?pool=NAME, or a
// click on its row) the day's queue and runner count as a plot, its
// schedules, its queued and running jobs, and its recent scaling
// decisions with why (GET /api/v1/runnerpools/{name}). Refreshed every 5 s.
import { api, $, cell, fmtTime } from './telemetry.js';

let selected = new URLSearchParams(location.search).get('pool');

function fmtSecs(s) {
  s = Math.round(s);
  if (s < 120) return s + 's';
  if (s < 7200) return Math.round(s / 60) + 'm';
  return (s / 3600).toFixed(1) + 'h';
}

function budget(p) {
  const used = p.runnerHoursToday.toFixed(1);
  if (!p.runnerHoursPerDay) return `${used} (no budget)`;
  const pct = Math.round((100 * p.runnerHoursToday) / p.runnerHoursPerDay);
  return `${used} / ${p.runnerHoursPerDay} (${pct}%)${p.budgetExhausted ? ' spent' : ''}`;
}

async function refreshPools() {
  const v = await api('/api/v1/runnerpools');
  const body = $('pools');
  body.replaceChildren();
  if (v.pools.length === 0) {
    const tr = document.createElement('tr');
    cell(tr, 'no runner pools: apply one with pave runners apply -f FILE (docs/runners.md)').colSpan = 10;
    body.appendChild(tr);
  }
  if (!selected && v.pools.length) selected = v.pools[0].name;
  for (const p of v.pools) {
    const tr = document.createElement('tr');
    tr.dataset.pool = p.name;
    tr.style.cursor = 'pointer';
    if (p.name === selected) tr.style.fontWeight = '600';
    tr.onclick = () => { selected = p.name; history.replaceState(null, '', '?pool=' + encodeURIComponent(p.name)); refresh(); };
    cell(tr, p.name);
    cell(tr, p.runners);
    cell(tr, p.desired);
    cell(tr, p.busy);
    cell(tr, p.idle);
    cell(tr, p.queued, p.queued > 0 ? 'warn' : '');
    cell(tr, p.queued > 0 ? fmtSecs(p.oldestQueuedSeconds) : '-');
    cell(tr, (p.activeWindows || []).join(', ') || '-');
    cell(tr, budget(p), p.budgetExhausted ? 'warn' : '');
    cell(tr, p.targetError ? `${p.target}: unreachable, retry ${p.retryAt}: ${p.targetError}` : p.target, p.targetError ? 'bad' : 'ok');
    body.appendChild(tr);
  }
  const w = v.webhook;
  let sig = `Queue signal: ${w.tracked} jobs queued or running, ${w.history} finished in the history, ${w.duplicates} duplicate deliveries ignored, ${w.badSignatures} refused for a bad signature.`;
  if (w.github && w.github.enabled) {
    sig += ` GitHub REST reconciliation: last ${w.github.last ? fmtTime(w.github.last) : 'never'}, ${w.github.seen} jobs listed, ${w.github.changes} missed events recorded`;
    if (w.github.error) sig += `; error: ${w.github.error}`;
  }
  $('signal').textContent = sig;
  $('signal').className = w.badSignatures > 0 || (w.github && w.github.error) ? 'warn' : '';
}

// plot draws the day's samples as step lines on a time axis.
function plot(samples) {
  const root = $('plot');
  root.replaceChildren();
  if (!samples.length) {
    root.textContent = 'no samples yet: the controller takes one every two minutes';
    return;
  }
  const svgNS = 'http://www.w3.org/2000/svg';
  const W = 900, H = 220, L = 40, B = 20;
  const svg = document.createElementNS(svgNS, 'svg');
  svg.setAttribute('id', 'plot-svg');
  svg.setAttribute('width', W + L + 40);
  svg.setAttribute('height', H + B);
  const add = (tag, attrs, text) => {
    const el = document.createElementNS(svgNS, tag);
    for (const [k, val] of Object.entries(attrs)) el.setAttribute(k, val);
    if (text !== undefined) el.textContent = text;
    svg.appendChild(el);
    return el;
  };
  const ts = samples.map((s) => Date.parse(s.t) / 1000);
  const t0 = Math.min(...ts), t1 = Math.max(t0 + 600, Date.now() / 1000);
  const top = Math.max(1, ...samples.map((s) => Math.max(s.runners, s.queued, s.desired)));
  const x = (t) => L + ((t - t0) / (t1 - t0)) * W;
  const y = (v) => H - (v / top) * (H - 10);
  add('line', { x1: L, y1: H, x2: L + W, y2: H, stroke: '#8884' });
  for (const v of [0, top]) add('text', { x: 0, y: y(v) + 4, 'font-size': 11, fill: 'currentColor' }, String(v));
  const series = [['runners', '#2f6fdf'], ['busy', '#2b8a3e'], ['queued', '#d9480f'], ['desired', '#8a8f98']];
  for (const [key, color] of series) {
    let d = '';
    samples.forEach((s, i) => {
      const xi = x(ts[i]), yi = y(s[key]);
      d += i === 0 ? `M${xi},${yi}` : `H${xi}V${yi}`;
    });
    d += `H${x(t1)}`;
    add('path', { d, fill: 'none', stroke: color, 'stroke-width': key === 'desired' ? 1 : 2, 'stroke-dasharray': key === 'desired' ? '4 3' : '', 'data-series': key });
  }
  for (let i = 0; i <= 4; i++) {
    const t = t0 + ((t1 - t0) * i) / 4;
    add('text', { x: x(t) - 16, y: H + 15, 'font-size': 11, fill: 'currentColor' }, new Date(t * 1000).toTimeString().slice(0, 5));
  }
  root.appendChild(svg);
}

async function refreshDetail() {
  if (!selected) {
    $('detail').hidden = true;
    return;
  }
  const d = await api('/api/v1/runnerpools/' + encodeURIComponent(selected));
  $('detail').hidden = false;
  const s = d.status;
  $('detail-title').textContent = `${s.name}: ${s.runners} runners (desired ${s.desired}, min ${s.min}, max ${s.max}), labels ${s.labels.join(', ')}`;
  $('budget').textContent = 'Budget used today: ' + budget(s) + (s.storeError ? ` — not saved: ${s.storeError}` : '');
  plot(d.samples);
  const sb = $('schedules');
  sb.replaceChildren();
  for (const sc of d.spec.schedules || []) {
    const tr = document.createElement('tr');
    const active = (s.activeWindows || []).includes(sc.cron);
    cell(tr, sc.cron); cell(tr, sc.timeZone); cell(tr, sc.duration); cell(tr, sc.min || 0); cell(tr, sc.spare || 0);
    cell(tr, active ? 'active now' : '-', active ? 'ok' : '');
    sb.appendChild(tr);
  }
  if (!(d.spec.schedules || []).length) {
    const tr = document.createElement('tr');
    cell(tr, 'no schedules: the queue alone drives this pool (pave runners suggest --pool ' + s.name + ')').colSpan = 6;
    sb.appendChild(tr);
  }
  const jb = $('jobs');
  jb.replaceChildren();
  const now = Date.now();
  for (const j of d.jobs) {
    const tr = document.createElement('tr');
    tr.dataset.job = j.id;
    const running = !!j.started;
    cell(tr, j.id); cell(tr, j.repo || '-');
    cell(tr, running ? 'running' : 'queued', running ? 'ok' : 'warn');
    cell(tr, fmtSecs((now - Date.parse(running ? j.started : j.queued)) / 1000));
    cell(tr, j.labels.join(', '));
    jb.appendChild(tr);
  }
  if (!d.jobs.length) {
    const tr = document.createElement('tr');
    cell(tr, 'no job queued or running').colSpan = 5;
    jb.appendChild(tr);
  }
  const db = $('decisions');
  db.replaceChildren();
  for (const x of d.decisions) {
    const tr = document.createElement('tr');
    cell(tr, fmtTime(x.time)); cell(tr, x.from); cell(tr, x.error ? '-' : x.to); cell(tr, x.desired);
    cell(tr, x.queued); cell(tr, x.busy);
    cell(tr, x.error ? `${x.reason}: target failed: ${x.error}` : x.reason, x.error ? 'bad' : '');
    db.appendChild(tr);
  }
  if (!d.decisions.length) {
    const tr = document.createElement('tr');
    cell(tr, 'none yet').colSpan = 7;
    db.appendChild(tr);
  }
}

async function refresh() {
  try {
    await refreshPools();
    await refreshDetail();
    $('error').textContent = '';
  } catch (e) {
    $('error').textContent = String(e);
  }
}

refresh();
setInterval(refresh, 5000);
