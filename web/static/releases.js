// The releases page: a list of recent releases and, for the selected one,
// live weights, per-version numbers, the verdict with the numbers behind
// it, the timeline, and the pause / resume / promote / abort buttons. All
// data comes from the JSON API (/api/v1/releases); it refreshes every 2 s.
// The evidence plots (request rate, error ratio, p99 of stable and canary
// over the release's time span, its steps and verdicts marked) come from
// the metrics store's PromQL API, redrawn every 15 s while it runs.
import { drawPlots, plotQueries, scrapeInterval } from './plots.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
let selected = params.get('name') || '';

// A token handed over in the address (ui/releases.html#token=…, as
// `pave up` prints it) is kept for this browser and taken out of the
// address bar. Reads need none on loopback; actions always do.
if (location.hash.startsWith('#token=')) {
  localStorage.setItem('pave.token', decodeURIComponent(location.hash.slice('#token='.length)));
  history.replaceState(null, '', location.pathname + location.search);
}

async function api(method, path) {
  const headers = {};
  const token = localStorage.getItem('pave.token');
  if (token) headers.Authorization = 'Bearer ' + token;
  const init = { method, headers };
  if (method !== 'GET') {
    // The API takes changes only as JSON: a page of another site cannot
    // send that without a CORS preflight, which the API never grants.
    headers['Content-Type'] = 'application/json';
    init.body = '{}';
  }
  const resp = await fetch(path, init);
  const body = await resp.json().catch(() => ({}));
  if (!resp.ok) throw new Error(body.error || `${method} ${path}: ${resp.status}`);
  return body;
}

const pct = (ppm) => `${+(ppm / 10000).toFixed(4)}%`;
const num = (v, digits = 0) => (v === undefined || v === null || Number.isNaN(v) ? '-' : (+v).toFixed(digits));

function cell(tr, text, cls) {
  const td = document.createElement('td');
  td.textContent = text;
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
}

function phaseClass(p) {
  return { promoted: 'ok', rolled_back: 'bad', failed: 'bad', aborted: 'warn', paused: 'warn' }[p] || '';
}

function stepText(r) {
  const s = r.status.step;
  if (s < 0 || s >= r.spec.steps.length) return 'no weight yet';
  return `step ${s + 1}/${r.spec.steps.length} (${r.spec.steps[s]}%)`;
}

function renderList(releases) {
  const body = $('list');
  body.replaceChildren();
  for (const r of releases) {
    const tr = document.createElement('tr');
    tr.dataset.name = r.metadata.name;
    if (r.metadata.name === selected) tr.className = 'sel';
    cell(tr, r.metadata.name);
    cell(tr, r.status.phase.replace('_', ' '), phaseClass(r.status.phase));
    cell(tr, stepText(r));
    tr.onclick = () => { selected = r.metadata.name; history.replaceState(null, '', '?name=' + encodeURIComponent(selected)); refresh(); };
    body.appendChild(tr);
  }
}

function errorFinding(d) {
  return (d?.findings || []).find((f) => f.judge === 'error-rate' && f.scope === '*')?.numbers || {};
}
function latencyFinding(d) {
  return (d?.findings || []).find((f) => f.judge === 'latency' && f.scope === '*')?.numbers || {};
}

function renderDetail(r, events) {
  $('detail').hidden = false;
  const st = r.status;
  $('title').textContent = `${r.metadata.name}: ${r.spec.service} ${st.stable || '(none)'} → ${r.spec.version}`;
  $('phase').textContent = st.phase.replace('_', ' ');
  $('phase').className = 'phase ' + phaseClass(st.phase);
  $('step').textContent = stepText(r);
  $('message').textContent = st.message || '';

  renderForecast(st);

  const weights = st.weights || {};
  const bar = $('weights');
  bar.replaceChildren();
  for (const [v, ppm] of Object.entries(weights)) {
    if (ppm <= 0) continue;
    const span = document.createElement('span');
    span.className = v === r.spec.version ? 'canary' : 'stable';
    span.style.width = Math.max(ppm / 10000, 6) + '%';
    span.textContent = `${v} ${pct(ppm)}`;
    span.dataset.version = v;
    bar.appendChild(span);
  }

  const e = errorFinding(st.decision);
  const l = latencyFinding(st.decision);
  const rows = $('versions');
  rows.replaceChildren();
  for (const [v, role, k] of [[st.stable, 'stable', 'stable'], [r.spec.version, 'canary', 'canary']]) {
    if (!v) continue;
    const tr = document.createElement('tr');
    tr.dataset.version = v;
    cell(tr, v); cell(tr, role); cell(tr, pct(weights[v] || 0));
    cell(tr, num(e[k + 'Requests'])); cell(tr, num(e[k + 'Errors']));
    cell(tr, e[k + 'ErrorRate'] === undefined ? '-' : num(100 * e[k + 'ErrorRate'], 3) + '%');
    cell(tr, num(l[k + 'P50Ms']) + ' ms'); cell(tr, num(l[k + 'P99Ms']) + ' ms');
    // The failing requests of this version, each one link away from its
    // request page (span waterfall and every log line of its trace).
    const a = document.createElement('a');
    a.textContent = 'failing requests';
    a.className = 'failing';
    a.href = '/ui/logs.html?' + new URLSearchParams({ service: r.spec.service, level: 'error', where: 'version=' + v, since: '24h' });
    tr.appendChild(document.createElement('td')).appendChild(a);
    rows.appendChild(tr);
  }

  const d = st.decision;
  $('verdict').textContent = d ? `${d.verdict}: ${d.reason}` : 'no verdict yet';
  $('verdict').className = 'reason ' + (d ? { pass: 'ok', fail: 'bad', hold: 'warn' }[d.verdict] : '');
  const fb = $('findings');
  fb.replaceChildren();
  for (const f of d?.findings || []) {
    const tr = document.createElement('tr');
    cell(tr, f.judge); cell(tr, f.scope === '*' ? 'all routes' : f.scope);
    cell(tr, f.verdict, { pass: 'ok', fail: 'bad', hold: 'warn' }[f.verdict]);
    const td = cell(tr, Object.entries(f.numbers || {}).map(([k, v]) => `${k}=${+(+v).toPrecision(4)}`).join(' '));
    td.className = 'mono';
    td.title = f.reason;
    fb.appendChild(tr);
  }

  const tl = $('timeline');
  tl.replaceChildren();
  for (const ev of events) {
    const tr = document.createElement('tr');
    cell(tr, new Date(ev.time).toLocaleTimeString());
    cell(tr, ev.type);
    let text = '';
    const data = ev.data || {};
    if (ev.type === 'step') text = `weight ${data.weight}%` + (data.decision ? ` after: ${data.decision.reason}` : '');
    else if (ev.type === 'weights') {
      // Per cluster ({cluster: "v1=99 v2=1"}) or, from older releases,
      // flat ({version: ppm}).
      text = Object.entries(data).map(([k, w]) => (typeof w === 'string' ? `${k}: ${w}` : `${k}=${pct(w)}`)).join(' · ');
    }
    else if (data.reason) text = data.reason;
    else if (data.message) text = data.message;
    else if (ev.type === 'verdict') text = `${data.verdict}: ${data.reason}`;
    else if (ev.type === 'created') text = `${data.service}@${data.version}`;
    cell(tr, text);
    tl.appendChild(tr);
  }

  renderEvidence(r, events);

  const running = !['promoted', 'rolled_back', 'aborted', 'failed'].includes(st.phase);
  $('pause').disabled = st.phase !== 'progressing';
  $('resume').disabled = st.phase !== 'paused';
  $('promote').disabled = !(st.phase === 'progressing' || st.phase === 'paused');
  $('abort').disabled = !running;
}

// The forecast (status.forecast): will the judges decide on their own at
// the service's traffic? A likely pause for a person is a warning with
// its remedies; otherwise the expected time. Shown while the release runs.
function duration(s) {
  const m = /^(?:(\d+)h)?(?:(\d+)m)?(?:([\d.]+)s)?$/.exec(s || '');
  if (!m) return s || '-';
  const secs = (+m[1] || 0) * 3600 + (+m[2] || 0) * 60 + (+m[3] || 0);
  if (secs < 60) return `${Math.round(secs)} s`;
  if (secs < 3600) return `${Math.round(secs / 60)} min`;
  return `${(secs / 3600).toFixed(1)} h`;
}
function renderForecast(st) {
  const f = st.forecast;
  // Why the release began with a shadow step nobody asked for
  // (status.forecast.shadowAdded): kept after the release ends, it
  // explains the mirrored step in the timeline.
  const added = $('shadow-added');
  added.hidden = !f?.shadowAdded;
  added.textContent = f?.shadowAdded ? `Shadow step added automatically: ${f.shadowAdded}` : '';
  const box = $('forecast');
  const ended = ['promoted', 'rolled_back', 'aborted', 'failed'].includes(st.phase);
  box.hidden = !f || ended;
  $('forecast-detail').hidden = box.hidden;
  if (box.hidden) return;
  const rate = f.rate >= 10 ? f.rate.toFixed(0) : (+f.rate.toPrecision(2)).toString();
  box.dataset.pauseLikely = String(!!f.pauseLikely);
  box.className = 'reason ' + (f.pauseLikely ? 'warn' : 'ok');
  box.textContent = f.pauseLikely
    ? `Warning: ${f.warning}`
    : `Forecast: the judges should decide in about ${duration(f.expected)} at ${rate} requests/s (${f.source}).`;
  const body = $('forecast-steps');
  body.replaceChildren();
  for (const s of f.steps || []) {
    const tr = document.createElement('tr');
    cell(tr, s.step < 0 ? 'shadow' : String(s.step + 1));
    cell(tr, s.step < 0 ? 'mirrored' : `${s.weight}%`);
    cell(tr, s.never ? 'never' : duration(s.expected || '0s'), s.never ? 'bad' : '');
    cell(tr, s.never ? '-' : String(s.samples));
    cell(tr, s.judge);
    body.appendChild(tr);
  }
}

// The marks on the evidence plots' time axis: each step with its weight,
// each change of verdict that was not a pass, and how the release ended.
const MARK_COLORS = { step: '#2f6fdf', fail: '#c92a2a', hold: '#e8590c', promoted: '#2b8a3e', rolled_back: '#c92a2a', aborted: '#e8590c', failed: '#c92a2a', paused: '#e8590c' };
function evidenceMarks(events) {
  const marks = [];
  for (const ev of events) {
    const time = Date.parse(ev.time) / 1000;
    const data = ev.data || {};
    if (ev.type === 'step') marks.push({ time, label: `${data.weight}%`, color: MARK_COLORS.step });
    else if (ev.type === 'verdict' && data.verdict !== 'pass') marks.push({ time, label: data.verdict, color: MARK_COLORS[data.verdict] });
    else if (MARK_COLORS[ev.type]) marks.push({ time, label: ev.type.replace('_', ' '), color: MARK_COLORS[ev.type] });
  }
  return marks;
}

let evidenceKey = '';
let evidenceAt = 0;
let evidenceBusy = false;
async function renderEvidence(r, events) {
  const st = r.status;
  const ended = !!st.finished;
  const key = [r.metadata.name, st.phase, events.length].join('|');
  if (evidenceBusy || (key === evidenceKey && (ended || Date.now() - evidenceAt < 15000))) return;
  evidenceBusy = true;
  const box = $('evidence');
  // A redraw empties the plots and adds them one by one: data-points
  // says the set is whole again (the browser tests wait for it).
  delete box.dataset.points;
  try {
    const created = events.find((ev) => ev.type === 'created');
    const begin = Date.parse(created?.time || st.started || r.metadata.created) / 1000;
    const finish = ended ? Date.parse(st.finished) / 1000 : Date.now() / 1000;
    const span = Math.max(finish - begin, 1);
    // A margin either side shows the stable version before and after.
    const start = Math.floor(begin - Math.max(30, span * 0.1));
    const end = Math.ceil(ended ? Math.min(finish + Math.max(30, span * 0.1), Date.now() / 1000) : finish);
    const step = Math.max(1, Math.ceil((end - start) / 300));
    const interval = await scrapeInterval();
    // rate() needs a few scrapes in its window, and no fewer than two steps.
    const window = Math.ceil(Math.max(4 * interval, 2 * step)) + 's';
    const versions = [st.stable, r.spec.version].filter(Boolean);
    const plots = plotQueries(r.spec.service, { versions, window, quantiles: [0.99] });
    const points = await drawPlots(box, { plots, start: start - (start % step), end, step, marks: evidenceMarks(events), width: 380, height: 190 });
    box.dataset.release = r.metadata.name;
    box.dataset.points = String(points);
    $('evidence-range').textContent = `${new Date(start * 1000).toLocaleTimeString()}–${new Date(end * 1000).toLocaleTimeString()}, step ${step}s, rate over ${window}`;
    $('evidence-error').textContent = '';
    evidenceKey = key;
    evidenceAt = Date.now();
  } catch (err) {
    $('evidence-error').textContent = 'evidence: ' + (err.message || err);
  } finally {
    evidenceBusy = false;
  }
}

async function refresh() {
  try {
    const svc = $('service').value.trim();
    const releases = await api('GET', '/api/v1/releases' + (svc ? '?service=' + encodeURIComponent(svc) : ''));
    if (!selected && releases.length) selected = releases[0].metadata.name;
    renderList(releases);
    if (selected) {
      const [r, events] = await Promise.all([
        api('GET', '/api/v1/releases/' + encodeURIComponent(selected)),
        api('GET', '/api/v1/releases/' + encodeURIComponent(selected) + '/history'),
      ]);
      renderDetail(r, events);
    }
    $('error').textContent = '';
  } catch (err) {
    $('error').textContent = err.message;
  }
}

for (const action of ['pause', 'resume', 'promote', 'abort']) {
  $(action).onclick = async () => {
    if ((action === 'abort' || action === 'promote') && !confirm(`${action} ${selected}?`)) return;
    try {
      await api('POST', `/api/v1/releases/${encodeURIComponent(selected)}/${action}`);
      await refresh();
    } catch (err) {
      $('error').textContent = err.message;
    }
  };
}
$('service').onchange = refresh;

refresh();
setInterval(refresh, 2000);
