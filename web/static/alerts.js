// The alerts page: active alerts with their state and why
// (GET /api/v1/alerting/alerts), each alert's state over the last hour
// drawn on a time axis from the ALERTS series the rule engine writes
// (GET /api/v1/query_range), silences, refused rule files and
// notifications a receiver has not accepted. Refreshed every 5 s.
import { api, $, cell } from './telemetry.js';

const stateClass = { firing: 'bad', pending: 'warn', inhibited: '', silenced: '' };
const HOUR = 3600;
const STEP = 15;

function labelList(ls) {
  return Object.keys(ls).filter((k) => k !== 'alertname').sort().map((k) => `${k}=${ls[k]}`).join(',');
}

function ago(iso) {
  if (!iso) return '-';
  const s = Math.round((Date.now() - Date.parse(iso)) / 1000);
  if (s < 0) return 'in ' + fmtSecs(-s);
  return fmtSecs(s) + ' ago';
}

function fmtSecs(s) {
  if (s < 120) return s + 's';
  if (s < 7200) return Math.round(s / 60) + 'm';
  return Math.round(s / 3600) + 'h';
}

async function refreshAlerts() {
  const v = await api('/api/v1/alerting/alerts');
  const body = $('alerts');
  body.replaceChildren();
  if (v.alerts.length === 0) {
    const tr = document.createElement('tr');
    cell(tr, 'no active alerts').colSpan = 5;
    body.appendChild(tr);
  }
  for (const a of v.alerts) {
    const tr = document.createElement('tr');
    tr.dataset.alert = a.name;
    cell(tr, a.state, stateClass[a.state]);
    cell(tr, a.name);
    cell(tr, labelList(a.labels));
    cell(tr, ago(a.firedAt || a.activeAt));
    const why = cell(tr, a.why);
    if (a.release) {
      // Deploy awareness: the release of the service the alert fired during.
      const l = document.createElement('a');
      l.href = a.annotations?.release_url || '/ui/releases.html?name=' + encodeURIComponent(a.release.name);
      l.dataset.release = a.release.name;
      l.textContent = `release ${a.release.name} (${a.release.version})`;
      why.append(' ', l);
    }
    body.appendChild(tr);
  }
  const dl = $('deliveries');
  dl.replaceChildren();
  for (const d of v.failingDeliveries) {
    const p = document.createElement('p');
    p.className = 'bad';
    p.textContent = `${d.receiver}/${d.integration} ${d.groupKey}: ${d.state} after ${d.attempts} attempts: ${d.lastError}`;
    dl.appendChild(p);
  }
  if (v.failingDeliveries.length === 0) dl.textContent = 'none: every notification was accepted by its receiver';
  const rf = $('rulefiles');
  rf.replaceChildren();
  for (const e of v.ruleFileErrors) {
    const p = document.createElement('p');
    p.className = 'bad';
    p.textContent = `${e.file}: ${e.error}`;
    rf.appendChild(p);
  }
  if (v.ruleFileErrors.length === 0) rf.textContent = 'none';
}

async function refreshSilences() {
  const sils = await api('/api/v1/alerting/silences');
  const body = $('silences');
  body.replaceChildren();
  for (const s of sils) {
    const tr = document.createElement('tr');
    cell(tr, s.id); cell(tr, s.state, s.state === 'active' ? 'warn' : '');
    cell(tr, s.matchers.join(',')); cell(tr, ago(s.endsAt)); cell(tr, s.createdBy); cell(tr, s.comment);
    body.appendChild(tr);
  }
}

// history draws one SVG row per alert (its labels without alertstate):
// a segment for every step at which it was pending or firing.
async function refreshHistory() {
  const end = Math.floor(Date.now() / 1000);
  const start = end - HOUR;
  const q = new URLSearchParams({ query: 'ALERTS', start, end, step: STEP });
  const res = await api('/api/v1/query_range?' + q);
  const rows = new Map();
  for (const s of res.data.result || []) {
    const { alertstate, __name__, ...ls } = s.metric;
    const key = (ls.alertname || '') + ' ' + labelList(ls);
    if (!rows.has(key)) rows.set(key, []);
    rows.get(key).push({ state: alertstate, values: s.values });
  }
  const root = $('history');
  root.replaceChildren();
  if (rows.size === 0) {
    root.textContent = 'no alert was pending or firing in the last hour';
    return;
  }
  const W = 720, labelW = 320, rowH = 18, axisH = 18;
  const svgNS = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(svgNS, 'svg');
  const keys = [...rows.keys()].sort();
  svg.setAttribute('width', labelW + W);
  svg.setAttribute('height', keys.length * rowH + axisH);
  svg.setAttribute('id', 'history-svg');
  const x = (t) => labelW + ((t - start) / HOUR) * W;
  const add = (tag, attrs, text) => {
    const el = document.createElementNS(svgNS, tag);
    for (const [k, val] of Object.entries(attrs)) el.setAttribute(k, val);
    if (text !== undefined) el.textContent = text;
    svg.appendChild(el);
    return el;
  };
  keys.forEach((key, i) => {
    const y = i * rowH;
    add('text', { x: 0, y: y + 13, 'font-size': 12, fill: 'currentColor' }, key.length > 48 ? key.slice(0, 47) + '…' : key);
    add('rect', { x: labelW, y: y + 3, width: W, height: rowH - 6, fill: 'none', stroke: '#8884' });
    for (const series of rows.get(key)) {
      const color = series.state === 'firing' ? 'var(--bad, #c33)' : 'var(--warn, #c90)';
      for (const [t] of series.values) {
        add('rect', { x: x(t - STEP / 2), y: y + 3, width: Math.max(1, (STEP / HOUR) * W), height: rowH - 6, fill: color, 'data-state': series.state });
      }
    }
  });
  const axisY = keys.length * rowH + 13;
  for (let m = 0; m <= 60; m += 10) {
    const t = start + m * 60;
    add('text', { x: x(t) - 12, y: axisY, 'font-size': 11, fill: 'currentColor' }, m === 60 ? 'now' : `-${60 - m}m`);
  }
  root.appendChild(svg);
}

async function refresh() {
  try {
    await Promise.all([refreshAlerts(), refreshSilences(), refreshHistory()]);
    $('error').textContent = '';
  } catch (e) {
    $('error').textContent = String(e);
  }
}

refresh();
setInterval(refresh, 5000);
