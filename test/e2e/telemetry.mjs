// The logs and request pages, end to end in headless Chromium: search with
// filters, the access-log columns, a click from a log line to the request
// page (result, span waterfall, logs interleaved with spans in time), a
// pasted trace id, and a bad trace id in the URL. Usage: node telemetry.mjs
// [BASE_URL] (or PAVE_URL); telemetry_test.go seeds the data and runs it.
import { launch, close, shotPath, must } from './browser.mjs';

const base = process.argv[2] || process.env.PAVE_URL;
must(base, 'usage: node telemetry.mjs BASE_URL (or set PAVE_URL)');
const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';

const browser = await launch();
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));

  // Search page: newest first, access-log fields as columns.
  await page.goto(base + '/ui/logs.html?since=1h');
  await page.waitForSelector('#rows tr');
  const headers = await page.$$eval('#results th', (ths) => ths.map((th) => th.textContent));
  for (const h of ['Route', 'Status', 'Caller', 'Merchant', 'Cluster', 'DC']) must(headers.includes(h), `column ${h} missing: ${headers}`);
  const total = await page.locator('#rows tr').count();
  must(total === 54, `${total} rows for the last hour, want 54 (50 unrelated lines + 4 of the failing request)`);
  const times = await page.$$eval('#rows tr td:first-child', (tds) => tds.map((td) => td.textContent));
  must(times.every((t, i) => i === 0 || t <= times[i - 1]), 'rows are not newest first');
  await page.screenshot({ path: shotPath('telemetry-logs'), fullPage: true });

  // Filters: service + level + a field.
  await page.fill('#service', 'orders');
  await page.selectOption('#level', 'error');
  await page.fill('#where', 'merchant_id=m42');
  await page.click('#search button[type=submit]');
  await page.waitForFunction(() => document.querySelectorAll('#rows tr').length === 1);
  const row = await page.$$eval('#rows tr td', (tds) => tds.map((td) => td.textContent));
  must(row[1] === 'ERROR' && row[3] === '/v1/orders' && row[4] === '502' && row[6] === 'web' && row[7] === 'm42' && row[8] === 'east' && row[9] === 'dc2',
    `filtered row: ${row}`);
  must((await page.getAttribute('#rows tr td:nth-child(5)', 'class')) === 'bad', '502 is not marked bad');
  must(page.url().includes('service=orders') && page.url().includes('level=error'), `filters not in the URL: ${page.url()}`);

  // A bad field filter names the problem.
  await page.fill('#where', 'merchant_id');
  await page.click('#search button[type=submit]');
  await page.waitForFunction(() => document.querySelector('#error').textContent.includes('where'));

  // Text search.
  await page.fill('#where', '');
  await page.fill('#service', '');
  await page.selectOption('#level', '');
  await page.fill('#text', 'psp refused');
  await page.click('#search button[type=submit]');
  await page.waitForFunction(() => document.querySelectorAll('#rows tr').length === 1 && document.querySelector('#rows tr .msg').textContent.startsWith('psp refused'));

  // From a log line to its request.
  await page.click('#rows tr td.msg');
  await page.waitForURL(/request\.html\?trace=/);
  must(page.url().endsWith('trace=' + TRACE), `opened ${page.url()}`);
  await page.waitForSelector('#detail:not([hidden])');
  const text = async (id) => (await page.textContent('#' + id)).trim();
  must(await text('s-route') === 'POST /v1/orders', `route: ${await text('s-route')}`);
  must(await text('s-status') === '502', `status: ${await text('s-status')}`);
  must(await text('s-latency') === '40.00 ms', `latency: ${await text('s-latency')}`);
  must(await text('s-caller') === 'web', 'caller');
  must(await text('s-merchant') === 'm42', 'merchant');
  must(await text('s-cluster') === 'east', 'cluster');
  must(await text('s-datacenter') === 'dc2', 'datacenter');
  const kinds = await page.$$eval('#timeline tbody tr', (trs) => trs.map((tr) => tr.className.split(' ')[0]));
  must(kinds.join(',') === 'span,log,span,span,log,log,log', `timeline order: ${kinds}`);
  const bars = await page.locator('#timeline .span-bar').count();
  must(bars === 3, `${bars} span bars, want 3`);
  must(await page.locator('#timeline .span-bar.error').count() === 2, 'failed spans are not marked');
  const refused = await page.$$eval('#timeline tr.log td.text', (tds) => tds.map((td) => td.textContent));
  must(refused.some((t) => t.startsWith('psp refused')), `logs on the timeline: ${refused}`);
  await page.screenshot({ path: shotPath('telemetry-request'), fullPage: true });

  // A pasted trace id, from the search page.
  await page.goto(base + '/ui/logs.html');
  await page.fill('#trace-paste', TRACE.toUpperCase());
  await page.click('#goto button');
  await page.waitForURL(/request\.html\?trace=/);
  await page.waitForSelector('#detail:not([hidden])');

  // By URL: an unknown trace and a malformed one say so.
  await page.goto(base + '/ui/request.html?trace=' + 'f'.repeat(32));
  await page.waitForFunction(() => document.querySelector('#error').textContent.includes('no spans or logs'));
  await page.goto(base + '/ui/request.html?trace=nothex');
  await page.waitForFunction(() => document.querySelector('#error').textContent.includes('not a trace id'));
  await page.screenshot({ path: shotPath('telemetry-request-bad-id') });

  must(errors.length === 0, `page errors: ${errors.join('; ')}`);
  console.log('telemetry UI: ok');
} finally {
  await close(browser);
}
