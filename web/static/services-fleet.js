// The service fleet page: GET /api/v1/fleet/services (the inventory of
// `pave services`) as a table, in the API's triage order (unreadable,
// vulnerable, oldest first) until a column header is clicked; a second
// click reverses it.
import { api, $, cell } from './telemetry.js';

let rows = [];
let sortKey = '';
let sortDir = 1;

const semverParts = (v) => (v || '').replace(/^v/, '').split(/[.-]/).map((x) => parseInt(x, 10) || 0);
function semverCmp(a, b) {
  const x = semverParts(a), y = semverParts(b);
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    if ((x[i] || 0) !== (y[i] || 0)) return (x[i] || 0) - (y[i] || 0);
  }
  return 0;
}

const keys = {
  name: (a, b) => a.name.localeCompare(b.name),
  template: (a, b) => (a.templateVersion || 0) - (b.templateVersion || 0),
  kit: (a, b) => semverCmp(a.kitVersion, b.kitVersion),
  go: (a, b) => semverCmp(a.goVersion, b.goVersion),
  vulns: (a, b) => (b.vulns || []).length - (a.vulns || []).length,
  release: (a, b) => ((a.lastRelease || {}).phase || '').localeCompare((b.lastRelease || {}).phase || ''),
  owner: (a, b) => (a.owner || '').localeCompare(b.owner || ''),
  problem: (a, b) => (b.error || '').localeCompare(a.error || ''),
};

function render() {
  const list = rows.slice();
  if (sortKey) list.sort((a, b) => sortDir * keys[sortKey](a, b));
  const body = $('rows');
  body.replaceChildren();
  if (list.length === 0) {
    const tr = document.createElement('tr');
    cell(tr, 'no services in the fleet file').colSpan = 8;
    body.appendChild(tr);
  }
  for (const s of list) {
    const tr = document.createElement('tr');
    tr.dataset.service = s.name;
    cell(tr, s.name + (s.dirty ? ' (dirty)' : ''));
    if (s.error) {
      for (let i = 0; i < 6; i++) cell(tr, '-');
      cell(tr, s.error, 'bad');
      body.appendChild(tr);
      continue;
    }
    cell(tr, `v${s.templateVersion}` + (s.templateBehind > 0 ? ` (${s.templateBehind} behind)` : ''), s.templateBehind > 0 ? 'warn' : '');
    cell(tr, (s.kitVersion || '-') + (s.kitBehind ? ' (behind)' : ''), s.kitBehind ? 'warn' : '');
    cell(tr, s.goVersion || '-');
    const vulns = s.vulns || [];
    if (s.vulnError) cell(tr, 'unchecked', 'warn').title = s.vulnError;
    else if (vulns.length) {
      const td = cell(tr, vulns.map((v) => `${v.id} (${v.module}${v.fixedIn ? ', fixed in ' + v.fixedIn : ''})`).join('; '), 'bad');
      td.dataset.vulns = String(vulns.length);
    } else cell(tr, 'none', 'ok');
    const r = s.lastRelease;
    if (s.releaseUnknown) cell(tr, 'unknown').title = s.releaseUnknown;
    else if (r) cell(tr, `${r.version} ${r.phase.replaceAll('_', ' ')}`, { promoted: 'ok', rolled_back: 'bad', failed: 'bad', aborted: 'bad' }[r.phase] || '');
    else cell(tr, 'none');
    cell(tr, s.owner || '-');
    cell(tr, '');
    body.appendChild(tr);
  }
}

async function load(refresh) {
  try {
    const rep = await api('/api/v1/fleet/services' + (refresh ? '?refresh=1' : ''));
    rows = rep.services || [];
    $('error').textContent = '';
    $('generated').textContent = `Read ${new Date(rep.generated).toLocaleString()} from ${rep.fleetFile}; newest template v${rep.templateLatest}, kit ${rep.kitLatest}.`;
    render();
  } catch (e) {
    $('error').textContent = e.message;
    $('rows').replaceChildren();
  }
}

for (const th of document.querySelectorAll('#fleet th[data-key]')) {
  th.style.cursor = 'pointer';
  th.addEventListener('click', () => {
    sortDir = sortKey === th.dataset.key ? -sortDir : 1;
    sortKey = th.dataset.key;
    render();
  });
}
$('refresh').addEventListener('click', () => load(true));
load(false);
