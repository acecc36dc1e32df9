// The clusters page: GET /api/v1/clusters (role, health, edge share,
// drain) with the waves of running releases (GET /api/v1/releases), and
// drain/undrain buttons calling the API the CLI uses. The buttons show
// only when GET /api/v1/whoami says this browser's token may call those
// routes: the API's guard decides, the page just asks it (and the API
// still refuses whatever a page sends). Refreshed every 5 s.
import { api, $, cell } from './telemetry.js';

async function post(path, body) {
  const headers = { 'Content-Type': 'application/json' };
  const token = localStorage.getItem('pave.token');
  if (token) headers.Authorization = 'Bearer ' + token;
  const resp = await fetch(path, { method: 'POST', headers, body: JSON.stringify(body || {}) });
  const out = await resp.json().catch(() => ({}));
  if (!resp.ok) throw new Error(out.error || `POST ${path}: ${resp.status}`);
  return out;
}

function since(iso) {
  if (!iso) return '';
  const s = Math.round((Date.now() - Date.parse(iso)) / 1000);
  return s < 120 ? `${s}s ago` : s < 7200 ? `${Math.round(s / 60)}m ago` : `${Math.round(s / 3600)}h ago`;
}

// wavesByCluster maps a cluster to the running releases in it and their wave.
function wavesByCluster(releases) {
  const m = {};
  for (const r of releases) {
    if (['promoted', 'rolled_back', 'aborted', 'failed'].includes(r.status.phase)) continue;
    for (const c of r.status.clusters || []) {
      const now = (r.status.wave === c.wave) ? ' (now)' : r.status.wave > c.wave ? ' (done)' : ' (next)';
      (m[c.name] = m[c.name] || []).push(`${r.metadata.name} wave ${c.wave + 1}${now}`);
    }
  }
  return m;
}

const drainRoutes = { drain: 'POST /api/v1/clusters/{name}/drain', undrain: 'POST /api/v1/clusters/{name}/undrain' };

// access asks the API whether this token may drain and undrain.
async function access() {
  const q = Object.values(drainRoutes).map((r) => 'route=' + encodeURIComponent(r)).join('&');
  const who = await api('/api/v1/whoami?' + q);
  const may = {};
  for (const [action, route] of Object.entries(drainRoutes)) may[action] = (who.routes && who.routes[route]) || { allowed: false };
  const needs = may.drain.needs || 'deployer';
  $('who').textContent = who.anonymous
    ? `You are not signed in (no token): drain and undrain need a ${needs} or higher token.`
    : `Signed in as ${who.name} (${who.role}).` + (may.drain.allowed ? '' : ` Drain and undrain need a ${needs} or higher token.`);
  return may;
}

async function refresh() {
  try {
    const [cl, rels, may] = await Promise.all([api('/api/v1/clusters'), api('/api/v1/releases').catch(() => []), access()]);
    const waves = wavesByCluster(rels);
    const body = $('clusters');
    body.replaceChildren();
    if (cl.clusters.length === 0) {
      const tr = document.createElement('tr');
      cell(tr, 'no clusters: add one with pave cluster add').colSpan = 8;
      body.appendChild(tr);
    }
    for (const c of cl.clusters) {
      const tr = document.createElement('tr');
      tr.dataset.cluster = c.name;
      cell(tr, c.name);
      cell(tr, c.kind + (c.datacenter ? ` in ${c.datacenter}` : '') + (c.router ? `, router ${c.router}` : ''));
      const state = (c.health && c.health.state) || 'unknown';
      cell(tr, state, state === 'healthy' ? 'ok' : state === 'unknown' ? '' : 'bad').dataset.health = state;
      cell(tr, c.health ? `${c.health.reason || state} ${since(c.health.since)}` : '-');
      cell(tr, `${c.share.toFixed(1)}%`).dataset.share = String(c.share);
      const d = c.drain || {};
      const progress = Math.round((1 - c.drainFactor) * 100);
      cell(tr, d.draining ? `draining: ${progress}% out` : c.drainFactor < 1 ? `undraining: ${Math.round(c.drainFactor * 100)}% back` : 'serving',
        d.draining ? 'warn' : '').dataset.drain = String(c.drainFactor);
      cell(tr, (waves[c.name] || []).join('; ') || '-');
      const td = cell(tr, '');
      const action = d.draining ? 'undrain' : 'drain';
      if (!may[action].allowed) {
        // No button: the API would refuse it. Say what would allow it.
        const note = document.createElement('span');
        note.style.color = 'var(--muted)';
        note.dataset.needs = may[action].needs || '';
        note.textContent = `${action} needs ${may[action].needs || 'another'} role`;
        note.title = `Your token may not ${action} clusters: the API needs role ${may[action].needs || '?'} or higher (pave token create --role ${may[action].needs || 'deployer'}).`;
        td.appendChild(note);
        body.appendChild(tr);
        continue;
      }
      const btn = document.createElement('button');
      btn.textContent = d.draining ? 'Undrain' : 'Drain';
      btn.dataset.action = action;
      btn.addEventListener('click', async () => {
        if (btn.dataset.action === 'drain' && !confirm(`Drain ${c.name}? Its traffic moves to the other clusters.`)) return;
        try {
          await post(`/api/v1/clusters/${encodeURIComponent(c.name)}/${btn.dataset.action}`, {});
          $('error').textContent = '';
          await refresh();
        } catch (e) {
          $('error').textContent = `${btn.dataset.action} ${c.name}: ${e.message}`;
        }
      });
      td.appendChild(btn);
      body.appendChild(tr);
    }
    document.body.dataset.loaded = 'true';
  } catch (e) {
    $('error').textContent = e.message;
  }
}

refresh();
setInterval(refresh, 5000);
