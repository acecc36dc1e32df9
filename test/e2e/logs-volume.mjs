// The logs page's volume bars in headless Chromium: the bars count every
// line the search matches (the total the Go test seeded), stacked by
// level; a click on the bar of the error burst narrows the search to that
// bucket, and the results are exactly the lines the bar counted.
// Usage: node logs-volume.mjs BASE_URL WANT_TOTAL BURST_UNIX_SECONDS
// (logs_volume_test.go runs it).
import { launch, close, shotPath, must } from './browser.mjs';

const [base, wantTotal, burst] = process.argv.slice(2);
must(base && wantTotal && burst, 'usage: node logs-volume.mjs BASE_URL WANT_TOTAL BURST_UNIX_SECONDS');

const browser = await launch();
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(base + '/ui/logs.html?service=orders&since=1h');
  await page.waitForSelector('#volume[data-total] canvas', { timeout: 30000 });
  const before = await page.$eval('#volume', (b) => ({ ...b.dataset }));
  console.log('bars:', JSON.stringify(before), await page.textContent('#volume-note'));
  must(before.total === wantTotal, `the bars count ${before.total} lines, the store holds ${wantTotal} matching`);
  must(Number(before.buckets) >= 20, `only ${before.buckets} bars for an hour`);
  const legend = await page.$$eval('#volume .u-legend .u-series th', (ths) => ths.map((th) => th.textContent.trim()).filter(Boolean));
  for (const l of ['error', 'warn', 'info']) must(legend.includes(l), `no ${l} level in the bars' legend: ${legend}`);
  await page.screenshot({ path: shotPath('logs-volume'), fullPage: true });

  // Hover the middle of the burst's bar: the legend shows its counts per
  // level. Buckets are aligned to their width, and the cursor takes the
  // bar whose middle is nearest: aimed at the burst itself, a burst a
  // second past a bucket's start would be a pixel's rounding from the bar
  // before it.
  const over = await page.locator('#volume .u-over').boundingBox();
  const from = Number(before.from), to = Number(before.to), width = Number(before.width);
  const middle = Math.floor(Number(burst) / width) * width + width / 2;
  const x = over.x + ((middle - from) / (to - from)) * over.width;
  await page.mouse.move(x, over.y + over.height - 3);
  const counts = await page.$$eval('#volume .u-legend .u-series', (rows) => Object.fromEntries(rows.slice(1).map((r) => [r.querySelector('th').textContent.trim(), Number(r.querySelector('td').textContent)])));
  console.log('bar under the cursor:', JSON.stringify(counts));
  must(counts.error > 0, `the burst's bar has no errors: ${JSON.stringify(counts)}`);
  const inBar = Object.values(counts).reduce((s, n) => s + n, 0);

  // Click it: the range narrows to the bar, the results are its lines.
  await page.mouse.click(x, over.y + over.height - 3);
  await page.waitForFunction(() => new URL(location.href).searchParams.has('from'), null, { timeout: 30000 });
  await page.waitForFunction((w) => { const b = document.querySelector('#volume'); return b.dataset.total && b.dataset.width !== w; }, before.width, { timeout: 20000 });
  await page.waitForFunction((n) => document.querySelectorAll('#rows tr').length === n, inBar, { timeout: 30000 })
    .catch(async () => must(false, `after the click: ${await page.$$eval('#rows tr', (r) => r.length)} result lines, the bar counted ${inBar}`));
  const after = await page.$eval('#volume', (b) => ({ ...b.dataset }));
  const url = new URL(page.url());
  console.log('narrowed:', url.search, JSON.stringify(after));
  must(!url.searchParams.get('since'), `since still set after the click: ${url.search}`);
  must(Number(after.total) === inBar, `the narrowed bars count ${after.total}, the clicked bar ${inBar}`);
  must(Number(after.width) < Number(before.width), `the bars did not get finer: ${before.width}s → ${after.width}s`);
  const f = Date.parse(url.searchParams.get('from') + 'Z') / 1000, t = Date.parse(url.searchParams.get('to') + 'Z') / 1000;
  must(f <= Number(burst) && Number(burst) < t, `the narrowed range ${f}..${t} does not hold the burst at ${burst}`);
  must((await page.textContent('#error')) === '', `page error text: ${await page.textContent('#error')}`);
  must(errors.length === 0, `page errors: ${errors}`);
  await page.screenshot({ path: shotPath('logs-volume-narrowed'), fullPage: true });
  console.log(`ok: ${before.total} lines in ${before.buckets} bars; clicked bar ${inBar} lines → ${after.buckets} bars of ${after.width}s`);
} finally {
  await close(browser);
}
