// Plots of the embedded metrics store (docs/metrics.md): per service, one
// line per version, over the last hour — request rate, error ratio, and
// p50/p99 latency — read with PromQL from /api/v1/query_range and drawn
// with uPlot (web/package.json; scripts/deps.sh puts it in /ui/lib).
import { api } from './telemetry.js';

const HOUR = 3600;
const STEP = 15;

let uPlotModule;
async function loadUPlot() {
  if (!uPlotModule) {
    try {
      uPlotModule = (await import('/ui/lib/uplot/uPlot.esm.js')).default;
    } catch {
      throw new Error('plots need the uPlot library in the binary: run bash scripts/deps.sh, then go build');
    }
    const css = document.createElement('link');
    css.rel = 'stylesheet';
    css.href = '/ui/lib/uplot/uPlot.min.css';
    document.head.appendChild(css);
  }
  return uPlotModule;
}

// The PromQL of each plot; S is the service's selector. The error ratio
// counts a version without 5xx answers as 0, not as missing.
export function plotQueries(service) {
  const s = `service="${service.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`;
  const total = `sum by (version) (rate(http_server_requests_total{${s}}[1m]))`;
  const errs = `sum by (version) (rate(http_server_requests_total{${s},status_class="5xx"}[1m]))`;
  const q = (p) => `histogram_quantile(${p}, sum by (version, le) (rate(http_server_request_duration_seconds_bucket{${s}}[1m])))`;
  return [
    { title: 'Requests per second', unit: 'req/s', series: [{ expr: total, label: (v) => v }] },
    { title: 'Error ratio', unit: '', series: [{ expr: `(${errs} or ${total} * 0) / ${total}`, label: (v) => v }] },
    { title: 'Latency p50 / p99', unit: 's', series: [{ expr: q(0.5), label: (v) => 'p50 ' + v }, { expr: q(0.99), label: (v) => 'p99 ' + v }] },
  ];
}

async function rangeQuery(expr, start, end) {
  const qs = new URLSearchParams({ query: expr, start, end, step: STEP });
  const body = await api('/api/v1/query_range?' + qs);
  return body.data.result;
}

const COLORS = ['#2f6fdf', '#d9480f', '#2b8a3e', '#9c36b5', '#e8590c', '#1098ad'];

// data aligns every series on the same time axis (start..end by STEP).
function align(start, end, results) {
  const xs = [];
  for (let t = start; t <= end; t += STEP) xs.push(t);
  const index = new Map(xs.map((t, i) => [t, i]));
  const cols = results.map(({ values }) => {
    const ys = new Array(xs.length).fill(null);
    for (const [t, v] of values) {
      const i = index.get(Math.round(t));
      const f = parseFloat(v);
      if (i !== undefined && Number.isFinite(f)) ys[i] = f;
    }
    return ys;
  });
  return [xs, ...cols];
}

// drawService fills container with the service's three plots; it answers
// the number of points drawn (the browser test checks it).
export async function drawService(container, service) {
  const uPlot = await loadUPlot();
  const end = Math.floor(Date.now() / 1000 / STEP) * STEP;
  const start = end - HOUR;
  container.replaceChildren();
  let points = 0;
  for (const plot of plotQueries(service)) {
    const results = [];
    for (const s of plot.series) {
      for (const r of await rangeQuery(s.expr, start, end)) results.push({ label: s.label(r.metric.version || ''), values: r.values });
    }
    results.sort((a, b) => a.label.localeCompare(b.label));
    const box = document.createElement('figure');
    box.className = 'plot';
    box.dataset.title = plot.title;
    container.appendChild(box);
    if (results.length === 0) {
      box.textContent = `${plot.title}: no data in the last hour`;
      continue;
    }
    const data = align(start, end, results);
    points += data.slice(1).reduce((n, ys) => n + ys.filter((y) => y !== null).length, 0);
    box.dataset.points = String(points);
    const fmt = (v) => (v === null || v === undefined ? '–' : plot.unit === 's' ? (v * 1000).toFixed(v < 0.01 ? 1 : 0) + ' ms'
      : plot.unit ? v.toFixed(1) : (v * 100).toFixed(1) + '%');
    new uPlot({
      title: plot.title, width: 420, height: 200,
      scales: { x: { time: true } },
      axes: [{}, { values: (u, vals) => vals.map(fmt), size: 60 }],
      series: [{}, ...results.map((r, i) => ({ label: r.label, stroke: COLORS[i % COLORS.length], width: 1.5, spanGaps: false, value: (u, v) => fmt(v) }))],
    }, data, box);
  }
  return points;
}

// servicesWithMetrics lists the services the store has series of.
export async function servicesWithMetrics() {
  const body = await api('/api/v1/label/service/values?' + new URLSearchParams({ 'match[]': 'http_server_requests_total' }));
  return body.data || [];
}
