// The logs page's volume bars: how many lines match the search in each
// time bucket, stacked by level, as Grafana Explore and Kibana draw them
// above the results. The counts are the telemetry store's own
// (GET /api/v1/logs/count?by=level with the search's filters and the
// bucket's from/to), so the bars count exactly the lines the search
// finds. Drawn with uPlot; a click on a bar narrows the range to it.
import { api } from './telemetry.js';
import { loadUPlot } from './plots.js';

const BUCKETS = 40;
const NICE = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];
const LEVELS = [['ERROR', '#c92a2a'], ['WARN', '#f08c00'], ['INFO', '#2f6fdf'], ['DEBUG', '#adb5bd']];

// buckets cuts [from, to) (seconds) into at most BUCKETS aligned buckets of
// a round width.
export function buckets(from, to) {
  const width = NICE.find((w) => (to - from) / w <= BUCKETS) || Math.ceil((to - from) / BUCKETS / 86400) * 86400;
  const out = [];
  for (let t = Math.floor(from / width) * width; t < to; t += width) out.push([Math.max(t, from), Math.min(t + width, to), t]);
  return { width, out };
}

async function pool(n, jobs) {
  const results = new Array(jobs.length);
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(n, jobs.length) }, async () => {
    while (next < jobs.length) {
      const i = next++;
      results[i] = await jobs[i]();
    }
  }));
  return results;
}

// drawVolume counts the lines of filters (URLSearchParams of
// /api/v1/logs without since/from/to/limit) per bucket of [from, to) and
// draws them in box; onPick(from, to) is called with a clicked bucket's
// range in seconds. It answers {total, buckets}.
export async function drawVolume(box, filters, from, to, onPick) {
  const uPlot = await loadUPlot();
  const { width, out } = buckets(from, to);
  const counts = await pool(6, out.map(([a, b]) => async () => {
    const q = new URLSearchParams(filters);
    q.set('by', 'level');
    q.set('from', new Date(a * 1000).toISOString());
    q.set('to', new Date(b * 1000).toISOString());
    const res = await api('/api/v1/logs/count?' + q);
    const m = {};
    for (const c of res.counts || []) m[String(c.value).toUpperCase()] = (m[String(c.value).toUpperCase()] || 0) + c.count;
    return m;
  }));
  const xs = out.map(([, , t]) => t + width / 2);
  const levels = [...LEVELS];
  for (const m of counts) for (const l of Object.keys(m)) if (!levels.some(([k]) => k === l)) levels.push([l, '#868e96']);
  const raw = levels.map(([l]) => counts.map((m) => m[l] || 0));
  // Stacked: each series is drawn as the sum of itself and the levels
  // below it, back to front; the legend shows the level's own count.
  const stacked = raw.map((_, i) => counts.map((_, j) => raw.slice(i).reduce((s, ys) => s + ys[j], 0)));
  const total = stacked.length ? stacked[0].reduce((s, v) => s + v, 0) : 0;
  box.replaceChildren();
  const bars = uPlot.paths.bars({ size: [0.9, 60], align: 0 });
  const u = new uPlot({
    width: Math.max(box.clientWidth, 600), height: 120,
    scales: { x: { time: true, range: () => [from, to] }, y: { range: (_, min, max) => [0, Math.max(max, 1)] } },
    axes: [{}, { size: 50, values: (_, vals) => vals.map((v) => (Number.isInteger(v) ? String(v) : '')) }],
    legend: { live: true },
    cursor: { points: { show: false }, drag: { x: false, y: false } },
    series: [{ value: (_, t) => (t == null ? '–' : new Date((t - width / 2) * 1000).toISOString().slice(11, 19) + ` +${width}s`) },
      ...levels.map(([l, color], i) => ({ label: l.toLowerCase(), fill: color, stroke: color, width: 0, paths: bars, points: { show: false },
        value: (uu, v, si, idx) => (idx == null ? '–' : String(raw[i][idx])) }))],
  }, [xs, ...stacked], box);
  u.over.addEventListener('click', () => {
    const i = u.cursor.idx;
    if (i == null || i < 0 || i >= out.length) return;
    onPick(out[i][0], out[i][1]);
  });
  box.dataset.total = String(total);
  box.dataset.buckets = String(out.length);
  box.dataset.width = String(width);
  box.dataset.from = String(from);
  box.dataset.to = String(to);
  return { total, buckets: out.length, width };
}
