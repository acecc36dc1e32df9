// The runners page end to end in headless Chromium: pools with their
// runners, queue, active schedule, budget and target error; the selected
// pool's plot of the day, queue and recent decisions. Usage: node
// runners.mjs BASE_URL (or PAVE_URL); runners_test.go feeds a real
// controller with signed webhooks.
import { launch, close, shotPath, must } from './browser.mjs';

const base = process.argv[2] || process.env.PAVE_URL;
must(base, 'usage: node runners.mjs BASE_URL (or set PAVE_URL)');

const browser = await launch();
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1100 } });
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(base + '/ui/index.html');
  await page.click('nav a[href="/ui/runners.html"]');
  await page.waitForSelector('tr[data-pool="e2e-linux"]', { timeout: 30000 });
  const row = async (name) => page.$$eval(`tr[data-pool="${name}"] td`, (tds) => tds.map((td) => [td.textContent, td.className]));
  const linux = await row('e2e-linux');
  // Pool, Runners, Desired, Busy, Idle, Queued, Oldest, Schedule now, Runner-hours, Target
  must(linux[1][0] === '4' && linux[2][0] === '4', `runners and desired (busy 1 + queued 2 + spare 1): ${JSON.stringify(linux)}`);
  must(linux[3][0] === '1' && linux[5][0] === '2', `busy and queued: ${JSON.stringify(linux)}`);
  must(linux[7][0].includes('* * * * *'), `active schedule: ${linux[7][0]}`);
  must(/ \/ 40 \(\d+%\)/.test(linux[8][0]), `budget used today: ${linux[8][0]}`);
  must(linux[9][0] === 'local' && linux[9][1] === 'ok', `target: ${JSON.stringify(linux[9])}`);
  const arm = await row('arm');
  must(arm[9][1] === 'bad' && arm[9][0].includes('unreachable') && arm[9][0].includes('connection refused'), `unreachable target: ${JSON.stringify(arm[9])}`);

  // The first pool by name (arm) is shown first; a click selects another.
  await page.waitForFunction(() => document.querySelector('#detail-title').textContent.startsWith('arm:'), null, { timeout: 30000 });
  await page.click('tr[data-pool="e2e-linux"]');
  await page.waitForFunction(() => document.querySelector('#detail-title').textContent.startsWith('e2e-linux:'), null, { timeout: 30000 });
  await page.waitForSelector('#plot-svg path[data-series="queued"]', { state: 'attached', timeout: 30000 });
  const queuedPath = await page.getAttribute('#plot-svg path[data-series="queued"]', 'd');
  must(/V(?!220)\d/.test(queuedPath), `the queued line never leaves 0: ${queuedPath}`);
  const series = await page.$$eval('#plot-svg path', (ps) => ps.map((p) => p.dataset.series));
  must(['runners', 'busy', 'queued', 'desired'].every((s) => series.includes(s)), `plot series: ${series}`);
  const title = await page.textContent('#detail-title');
  must(title.startsWith('e2e-linux: 4 runners'), `detail title: ${title}`);
  const jobs = await page.$$eval('#jobs tr[data-job]', (trs) => trs.map((tr) => [...tr.children].map((td) => td.textContent)));
  must(jobs.length === 3 && jobs.filter((j) => j[2] === 'queued').length === 2 && jobs.every((j) => j[1] === 'acme/app'), `queue: ${JSON.stringify(jobs)}`);
  const decisions = await page.$$eval('#decisions tr', (trs) => trs.map((tr) => [...tr.children].map((td) => td.textContent)));
  must(decisions.length >= 2 && decisions.some((d) => d[6].startsWith('queue')), `decisions: ${JSON.stringify(decisions)}`);
  const scheds = await page.textContent('#schedules');
  must(scheds.includes('Asia/Seoul') && scheds.includes('active now'), `schedules: ${scheds}`);
  const signal = await page.textContent('#signal');
  must(signal.includes('3 jobs queued or running') && signal.includes('1 finished'), `queue signal: ${signal}`);
  await page.screenshot({ path: shotPath('runners'), fullPage: true });

  await page.click('tr[data-pool="arm"]');
  await page.waitForFunction(() => document.querySelector('#detail-title').textContent.startsWith('arm:'), null, { timeout: 30000 });
  const armDecisions = await page.textContent('#decisions');
  must(armDecisions.includes('target failed') && armDecisions.includes('connection refused'), `arm decisions: ${armDecisions}`);
  must(new URL(page.url()).searchParams.get('pool') === 'arm', `url keeps the pool: ${page.url()}`);
  must((await page.textContent('#error')) === '', 'the page reported an error');
  must(errors.length === 0, `page errors: ${errors}`);
  console.log(`ok: ${series.length} plot series, ${jobs.length} jobs, ${decisions.length} decisions`);
} finally {
  await close(browser);
}
