// The alerts page end to end in headless Chromium: the active alerts with
// their state and why (firing, pending, silenced), and the state history
// drawn on a time axis from the ALERTS series. Usage: node alerts.mjs
// BASE_URL (or PAVE_URL); alerts_test.go runs a real rule engine.
import { launch, close, shotPath, must } from './browser.mjs';

const base = process.argv[2] || process.env.PAVE_URL;
must(base, 'usage: node alerts.mjs BASE_URL (or set PAVE_URL)');

const browser = await launch();
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(base + '/ui/alerts.html');
  await page.waitForSelector('tr[data-alert="OrdersDown"]', { timeout: 30000 });
  const rows = await page.$$eval('#alerts tr', (trs) => trs.map((tr) => [...tr.children].map((td) => td.textContent)));
  const state = (name) => (rows.find((r) => r[1] === name) || [])[0];
  must(state('OrdersDown') === 'firing', `OrdersDown: ${JSON.stringify(rows)}`);
  must(state('SearchSlow') === 'pending', `SearchSlow: ${JSON.stringify(rows)}`);
  must(state('PaymentsTicket') === 'silenced', `PaymentsTicket: ${JSON.stringify(rows)}`);
  const why = (rows.find((r) => r[1] === 'PaymentsTicket') || [])[4] || '';
  must(why.includes('by ana') && why.includes('OPS-42'), `why of the silenced alert: ${why}`);
  await page.waitForSelector('#history-svg rect[data-state="firing"]', { timeout: 30000 });
  await page.waitForSelector('#history-svg rect[data-state="pending"]', { timeout: 30000 });
  const labels = await page.$$eval('#history-svg text', (ts) => ts.map((t) => t.textContent));
  must(labels.some((l) => l.startsWith('OrdersDown')) && labels.includes('now'), `history rows and axis: ${labels}`);
  const sil = await page.textContent('#silences');
  must(sil.includes('service="payments"') && sil.includes('active'), `silences table: ${sil}`);
  must((await page.textContent('#error')) === '', 'the page reported an error');
  must(errors.length === 0, `page errors: ${errors}`);
  await page.screenshot({ path: shotPath('alerts'), fullPage: true });
  console.log(`ok: ${rows.length} alerts, history with ${labels.length} labels`);
} finally {
  await close(browser);
}
