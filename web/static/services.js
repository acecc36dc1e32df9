// The services page: what the local runtime runs (GET /api/v1/runtime) and
// how the gateway splits each service's traffic (GET /api/v1/traffic/S),
// refreshed every two seconds.
import { api, $, cell } from './telemetry.js';
import { drawService, servicesWithMetrics } from './plots.js';

async function refresh() {
  try {
    const list = await api('/api/v1/runtime');
    const deps = list.deployments || [];
    const services = [...new Set(deps.map((d) => d.service))];
    const traffic = {};
    await Promise.all(services.map(async (s) => { traffic[s] = await api('/api/v1/traffic/' + encodeURIComponent(s)); }));
    const body = $('services');
    body.replaceChildren();
    if (deps.length === 0) {
      const tr = document.createElement('tr');
      cell(tr, 'nothing runs yet: pave run SERVICE --version V --source DIR').colSpan = 8;
      body.appendChild(tr);
    }
    for (const d of deps) {
      const t = traffic[d.service] || {};
      const st = (t.stats || {})[d.version]?.total || {};
      const tr = document.createElement('tr');
      cell(tr, d.service); cell(tr, d.version);
      cell(tr, (t.percent || {})[d.version] ? t.percent[d.version] + '%' : '-');
      cell(tr, `${d.ready}/${d.replicas}`, d.ready >= d.replicas ? 'ok' : 'warn');
      cell(tr, (d.instances || []).map((i) => `${i.name} ${i.state}${i.restarts ? ' (' + i.restarts + ' restarts)' : ''}`).join(', '));
      cell(tr, String(st.requests || 0)); cell(tr, String(st.errors || 0), st.errors ? 'bad' : '');
      const a = document.createElement('a');
      a.textContent = 'logs';
      a.href = '/ui/logs.html?' + new URLSearchParams({ service: d.service, where: 'version=' + d.version, since: '1h' });
      tr.appendChild(document.createElement('td')).appendChild(a);
      body.appendChild(tr);
    }
    $('error').textContent = '';
  } catch (e) {
    $('error').textContent = String(e);
  }
}

// Plots of each service from the metrics store, redrawn every 15 s (the
// default scrape interval).
async function refreshPlots() {
  try {
    const root = $('plots');
    const services = await servicesWithMetrics();
    if (services.length === 0) root.textContent = 'no service metrics yet: the store scrapes every running instance every 15 s';
    else if (root.textContent.startsWith('no service metrics')) root.replaceChildren();
    for (const s of services) {
      let section = root.querySelector(`section[data-service="${CSS.escape(s)}"]`);
      if (!section) {
        section = document.createElement('section');
        section.dataset.service = s;
        section.className = 'plots';
        const h = document.createElement('h3');
        h.textContent = s;
        const row = document.createElement('div');
        row.className = 'plot-row';
        section.append(h, row);
        root.appendChild(section);
      }
      section.dataset.points = String(await drawService(section.querySelector('.plot-row'), s));
    }
    $('plots-error').textContent = '';
  } catch (e) {
    $('plots-error').textContent = String(e.message || e);
  }
}

refresh();
setInterval(refresh, 2000);
refreshPlots();
setInterval(refreshPlots, 15000);
