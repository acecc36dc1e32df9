// Plots of the embedded metrics store (docs/metrics.md), read with PromQL
// from /api/v1/query_range and drawn with uPlot (web/package.json;
// scripts/deps.sh puts it in /ui/lib). The services page draws each
// service over the last hour; the releases page draws a release's evidence
// over its own time span, with its steps and verdicts marked.
import { api } from './telemetry.js';

const HOUR = 3600;
const STEP = 15;

let uPlotModule;
export async function loadUPlot() {
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

const quote = (s) => `"${s.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`;

// The PromQL of each plot for a service (and optionally only some of its
// versions), with rate() over window. The error ratio counts a version
// without 5xx answers as 0, not as missing.
export function plotQueries(service, { versions = [], window = '1m', quantiles = [0.5, 0.99] } = {}) {
  let s = `service=${quote(service)}`;
  if (versions.length) s += `,version=~${quote(versions.map((v) => v.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|'))}`;
  const total = `sum by (version) (rate(http_server_requests_total{${s}}[${window}]))`;
  const errs = `sum by (version) (rate(http_server_requests_total{${s},status_class="5xx"}[${window}]))`;
  const q = (p) => `histogram_quantile(${p}, sum by (version, le) (rate(http_server_request_duration_seconds_bucket{${s}}[${window}])))`;
  const pname = (p) => 'p' + Math.round(p * 100);
  return [
    { title: 'Requests per second', unit: 'req/s', series: [{ expr: total, label: (v) => v }] },
    { title: 'Error ratio', unit: '', series: [{ expr: `(${errs} or ${total} * 0) / ${total}`, label: (v) => v }] },
    { title: 'Latency ' + quantiles.map(pname).join(' / '), unit: 's', series: quantiles.map((p) => ({ expr: q(p), label: (v) => pname(p) + ' ' + v })) },
  ];
}

async function rangeQuery(expr, start, end, step) {
  const qs = new URLSearchParams({ query: expr, start, end, step });
  const body = await api('/api/v1/query_range?' + qs);
  return body.data.result;
}

const COLORS = ['#2f6fdf', '#d9480f', '#2b8a3e', '#9c36b5', '#e8590c', '#1098ad'];

// data aligns every series on the same time axis (start..end by step).
function align(start, end, step, results) {
  const xs = [];
  for (let t = start; t <= end; t += step) xs.push(t);
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

// markersPlugin draws a vertical line per mark ({time, label, color}) with
// its label at the top: a release's steps and verdicts on the time axis.
function markersPlugin(marks) {
  return {
    hooks: {
      draw: (u) => {
        const { ctx } = u;
        const { top, height, left, width } = u.bbox;
        ctx.save();
        ctx.font = `${Math.round(10 * devicePixelRatio)}px sans-serif`;
        ctx.textBaseline = 'top';
        // Labels of marks close together are put on alternate rows.
        let lastX = -Infinity;
        let row = 0;
        for (const m of marks) {
          const x = Math.round(u.valToPos(m.time, 'x', true));
          if (x < left || x > left + width) continue;
          ctx.strokeStyle = m.color || '#868e96';
          ctx.fillStyle = m.color || '#495057';
          ctx.setLineDash([4 * devicePixelRatio, 3 * devicePixelRatio]);
          ctx.lineWidth = devicePixelRatio;
          ctx.beginPath();
          ctx.moveTo(x, top);
          ctx.lineTo(x, top + height);
          ctx.stroke();
          row = x - lastX < 40 * devicePixelRatio ? (row + 1) % 3 : 0;
          lastX = x;
          ctx.fillText(m.label, x + 3 * devicePixelRatio, top + (2 + 11 * row) * devicePixelRatio);
        }
        ctx.restore();
      },
    },
  };
}

// drawPlots fills container with one uPlot chart per plot of plotQueries,
// over [start, end] by step seconds, with marks drawn on each. It answers
// the number of points drawn (the browser tests check it).
export async function drawPlots(container, { plots, start, end, step, marks = [], width = 420, height = 200 }) {
  const uPlot = await loadUPlot();
  container.replaceChildren();
  let points = 0;
  for (const plot of plots) {
    const results = [];
    for (const s of plot.series) {
      for (const r of await rangeQuery(s.expr, start, end, step)) results.push({ label: s.label(r.metric.version || ''), values: r.values });
    }
    results.sort((a, b) => a.label.localeCompare(b.label));
    const box = document.createElement('figure');
    box.className = 'plot';
    box.dataset.title = plot.title;
    container.appendChild(box);
    if (results.length === 0) {
      box.textContent = `${plot.title}: no data in this time range`;
      continue;
    }
    const data = align(start, end, step, results);
    const n = data.slice(1).reduce((k, ys) => k + ys.filter((y) => y !== null).length, 0);
    points += n;
    box.dataset.points = String(n);
    box.dataset.marks = String(marks.filter((m) => m.time >= start && m.time <= end).length);
    const fmt = (v) => (v === null || v === undefined ? '–' : plot.unit === 's' ? (v * 1000).toFixed(v < 0.01 ? 1 : 0) + ' ms'
      : plot.unit ? v.toFixed(1) : (v * 100).toFixed(1) + '%');
    new uPlot({
      title: plot.title, width, height,
      // A ratio's axis starts at 0 and shows at least 0–1%, so a line
      // of zeros reads as 0%, not as an axis of noise.
      scales: { x: { time: true }, ...(plot.unit === '' ? { y: { range: (u, min, max) => [0, Math.max(max * 1.1, 0.01)] } } : {}) },
      axes: [{}, { values: (u, vals) => vals.map(fmt), size: 60 }],
      plugins: marks.length ? [markersPlugin(marks)] : [],
      series: [{}, ...results.map((r, i) => ({ label: r.label, stroke: COLORS[i % COLORS.length], width: 1.5, spanGaps: false, value: (u, v) => fmt(v) }))],
    }, data, box);
  }
  return points;
}

// drawService fills container with the service's three plots over the
// last hour, one line per version.
export async function drawService(container, service) {
  const end = Math.floor(Date.now() / 1000 / STEP) * STEP;
  return drawPlots(container, { plots: plotQueries(service), start: end - HOUR, end, step: STEP });
}

// scrapeInterval answers the services' scrape interval in seconds (15 if
// no target says): a rate() window must hold a few scrapes.
export async function scrapeInterval() {
  const body = await api('/api/v1/targets?' + new URLSearchParams({ state: 'active', scrapePool: 'services' }));
  const t = (body.data?.activeTargets || [])[0];
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)$/.exec(t?.scrapeInterval || '');
  if (!m) return STEP;
  return parseFloat(m[1]) * { ms: 0.001, s: 1, m: 60 }[m[2]];
}

// servicesWithMetrics lists the services the store has series of.
export async function servicesWithMetrics() {
  const body = await api('/api/v1/label/service/values?' + new URLSearchParams({ 'match[]': 'http_server_requests_total' }));
  return body.data || [];
}
