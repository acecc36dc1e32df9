// The service map page: GET /api/v1/servicemap laid out by dagre (a
// layered graph layout from npm, web/package.json) and drawn as SVG.
// Edges of one caller → service pair in several clusters are drawn once
// (totals) unless one cluster is chosen, and are listed per cluster in
// the table below; a click on an edge opens the request viewer on its
// latest failing request.
import { api, $, cell, requestLink } from './telemetry.js';
import dagre from './lib/dagre/dagre.esm.js';

const SVG = 'http://www.w3.org/2000/svg';
const el = (name, attrs, parent) => {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (parent) parent.appendChild(e);
  return e;
};

export function edgeColour(ratio) {
  if (ratio > 0.05) return '#c0392b';
  if (ratio > 0.01) return '#e67e22';
  return '#27ae60';
}

// merge sums the per-cluster edges of one pair; the failing example is
// the latest of them.
function merge(edges) {
  const m = new Map();
  for (const e of edges) {
    const k = e.from + '\u0000' + e.to;
    const t = m.get(k) || { from: e.from, to: e.to, requests: 0, errors: 0, ratePerSec: 0, p99Ms: 0, failingTrace: '', failingTime: '' };
    t.requests += e.requests;
    t.errors += e.errors;
    t.ratePerSec += e.ratePerSec;
    t.p99Ms = Math.max(t.p99Ms, e.p99Ms);
    if (e.failingTrace && (!t.failingTime || e.failingTime > t.failingTime)) {
      t.failingTrace = e.failingTrace;
      t.failingTime = e.failingTime;
    }
    m.set(k, t);
  }
  return [...m.values()].map((t) => ({ ...t, errorRatio: t.requests ? t.errors / t.requests : 0 }));
}

function draw(g) {
  const box = $('map');
  box.replaceChildren();
  if (g.nodes.length === 0) {
    box.textContent = 'no access logs in this window';
    return;
  }
  const layout = new dagre.graphlib.Graph();
  layout.setGraph({ rankdir: 'LR', nodesep: 30, ranksep: 90, marginx: 20, marginy: 20 });
  layout.setDefaultEdgeLabel(() => ({}));
  for (const n of g.nodes) {
    const label = n.canary ? `${n.service} ${n.version} (canary)` : n.id;
    layout.setNode(n.id, { label, width: Math.max(90, label.length * 7 + 20), height: 36, node: n });
  }
  const merged = merge(g.edges);
  for (const e of merged) layout.setEdge(e.from, e.to, { edge: e });
  dagre.layout(layout);
  const gr = layout.graph();
  const svg = el('svg', { width: gr.width, height: gr.height, viewBox: `0 0 ${gr.width} ${gr.height}` }, box);
  const defs = el('defs', {}, svg);
  for (const c of ['#c0392b', '#e67e22', '#27ae60']) {
    const m = el('marker', { id: 'arrow' + c.slice(1), viewBox: '0 0 10 10', refX: 10, refY: 5, markerWidth: 6, markerHeight: 6, orient: 'auto' }, defs);
    el('path', { d: 'M0,0 L10,5 L0,10 z', fill: c }, m);
  }
  for (const id of layout.edges()) {
    const { edge: e, points } = layout.edge(id);
    const colour = edgeColour(e.errorRatio);
    const grp = el('g', { class: 'edge', 'data-from': e.from, 'data-to': e.to, 'data-colour': colour }, svg);
    const d = points.map((p, i) => (i ? 'L' : 'M') + p.x + ',' + p.y).join(' ');
    el('path', { d, stroke: colour, 'marker-end': `url(#arrow${colour.slice(1)})` }, grp);
    const mid = points[Math.floor(points.length / 2)];
    const t = el('text', { x: mid.x, y: mid.y - 6, 'text-anchor': 'middle' }, grp);
    t.textContent = `${e.ratePerSec.toFixed(1)}/s ${(e.errorRatio * 100).toFixed(1)}% p99 ${Math.round(e.p99Ms)}ms`;
    el('title', {}, grp).textContent = `${e.from} → ${e.to}: ${e.requests} requests, ${e.errors} errors` + (e.failingTrace ? ' — click for a failing request' : '');
    grp.addEventListener('click', () => {
      if (e.failingTrace) location.href = requestLink(e.failingTrace);
    });
  }
  for (const id of layout.nodes()) {
    const n = layout.node(id);
    const cls = 'node' + (n.node.canary ? ' canary' : '') + (n.node.external ? ' external' : '');
    const grp = el('g', { class: cls, 'data-id': id, transform: `translate(${n.x - n.width / 2},${n.y - n.height / 2})` }, svg);
    el('rect', { width: n.width, height: n.height, rx: 6 }, grp);
    const t = el('text', { x: n.width / 2, y: 22, 'text-anchor': 'middle' }, grp);
    t.textContent = n.label;
  }
}

function table(g) {
  const body = $('edges');
  body.replaceChildren();
  for (const e of g.edges) {
    const tr = document.createElement('tr');
    for (const v of [e.from, e.to, e.cluster || '-', e.requests, e.ratePerSec.toFixed(2)]) cell(tr, v);
    cell(tr, `${e.errors} (${(e.errorRatio * 100).toFixed(1)}%)`, e.errorRatio > 0.05 ? 'bad' : e.errorRatio > 0.01 ? 'warn' : '');
    cell(tr, Math.round(e.p99Ms));
    const td = cell(tr, '');
    if (e.failingTrace) {
      const a = document.createElement('a');
      a.href = requestLink(e.failingTrace);
      a.textContent = e.failingTrace.slice(0, 12) + '…';
      td.appendChild(a);
    }
    body.appendChild(tr);
  }
}

// clusters fills the cluster choice from the edges, keeping the choice.
function clusters(g) {
  const sel = $('cluster');
  const chosen = sel.value;
  const names = [...new Set(g.edges.map((e) => e.cluster || ''))].filter(Boolean).sort();
  sel.replaceChildren();
  for (const [v, label] of [['', 'all clusters'], ...names.map((n) => [n, n])]) {
    const o = document.createElement('option');
    o.value = v;
    o.textContent = label;
    sel.appendChild(o);
  }
  sel.value = names.includes(chosen) ? chosen : '';
}

// inCluster keeps the chosen cluster's edges and the nodes they touch
// (a canary node stays: it exists while its release runs).
function inCluster(g, cluster) {
  if (!cluster) return g;
  const edges = g.edges.filter((e) => e.cluster === cluster);
  const used = new Set(edges.flatMap((e) => [e.from, e.to]));
  return { ...g, edges, nodes: g.nodes.filter((n) => used.has(n.id) || n.canary) };
}

let last = { nodes: [], edges: [] };

function show() {
  const g = inCluster(last, $('cluster').value);
  draw(g);
  table(g);
}

async function load() {
  try {
    last = await api('/api/v1/servicemap?since=' + encodeURIComponent($('since').value));
    $('error').textContent = '';
    clusters(last);
    show();
    document.body.dataset.loaded = 'true';
  } catch (e) {
    $('error').textContent = e.message;
  }
}

$('since').addEventListener('change', load);
$('cluster').addEventListener('change', show);
load();
setInterval(load, 15000);
