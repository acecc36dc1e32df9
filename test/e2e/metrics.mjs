// The services page's plots, end to end in headless Chromium: for service
// pay, three uPlot charts (rate, error ratio, p50/p99) with a line per
// version drawn from the metrics store. Usage: node metrics.mjs [BASE_URL]
// (or PAVE_URL); metrics_test.go seeds an hour of data and runs it.
import { launch, close, shotPath, must } from './browser.mjs';

const base = process.argv[2] || process.env.PAVE_URL;
must(base, 'usage: node metrics.mjs BASE_URL (or set PAVE_URL)');

const browser = await launch();
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(base + '/ui/services.html');
  await page.waitForSelector('section[data-service="pay"][data-points]', { timeout: 30000 });
  const plots = await page.$$eval('section[data-service="pay"] figure.plot', (fs) => fs.map((f) => ({
    title: f.dataset.title, canvas: !!f.querySelector('canvas'), legend: [...f.querySelectorAll('.u-legend .u-series th')].map((th) => th.textContent.trim()).filter(Boolean),
  })));
  must(plots.length === 3, `want 3 plots, got ${JSON.stringify(plots)}`);
  must(plots.every((p) => p.canvas), `every plot has a canvas: ${JSON.stringify(plots)}`);
  const want = { 'Requests per second': ['v1', 'v2'], 'Error ratio': ['v1', 'v2'], 'Latency p50 / p99': ['p50 v1', 'p50 v2', 'p99 v1', 'p99 v2'] };
  for (const p of plots) {
    for (const l of want[p.title] || ['?']) must(p.legend.includes(l), `plot ${p.title} lacks a line for ${l}: ${p.legend}`);
  }
  const points = Number(await page.getAttribute('section[data-service="pay"]', 'data-points'));
  must(points > 400, `only ${points} points drawn for an hour of two versions`);
  // The canary's error ratio is about 5%: the legend shows the value under the cursor.
  const box = await page.locator('figure.plot[data-title="Error ratio"] .u-over').boundingBox();
  await page.mouse.move(box.x + box.width - 5, box.y + box.height / 2);
  const ratio = await page.$$eval('figure.plot[data-title="Error ratio"] .u-legend .u-series', (rows) => rows.map((r) => r.textContent));
  must(ratio.some((r) => r.includes('v2') && r.includes('5.0%')), `v2's error ratio is not 5.0% at the right edge: ${ratio}`);
  must(ratio.some((r) => r.includes('v1') && r.includes('0.0%')), `v1's error ratio is not 0.0%: ${ratio}`);
  must((await page.textContent('#plots-error')) === '', 'the plots reported an error');
  must(errors.length === 0, `page errors: ${errors}`);
  await page.screenshot({ path: shotPath('services-plots'), fullPage: true });
  console.log(`ok: 3 plots, ${points} points`);
} finally {
  await close(browser);
}
