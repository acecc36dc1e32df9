// The releases page, end to end in headless Chromium: a release in
// progress shows its weights, per-version numbers and verdict; the pause,
// resume and abort buttons act on it. Usage: node releases.mjs BASE_URL
// (the Go test releases_test.go starts the control plane and runs this).
import { launch, close, shotPath, must } from './browser.mjs';

const base = process.argv[2];
must(base, 'usage: node releases.mjs BASE_URL');

const browser = await launch();
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on('dialog', (d) => d.accept());
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));

  // Reads need no token on loopback; the buttons do (PAVE_TOKEN, handed
  // over in the address as a user would).
  const token = process.env.PAVE_TOKEN;
  await page.goto(base + '/ui/releases.html' + (token ? '#token=' + encodeURIComponent(token) : ''));
  await page.waitForSelector('#list tr[data-name="shop-v2"]');
  await page.waitForFunction(() => document.querySelector('#phase')?.textContent === 'progressing');
  // Numbers arrive with the first stored verdict.
  await page.waitForFunction(() => {
    const row = document.querySelector('#versions tr[data-version="v2"]');
    return row && Number(row.children[3].textContent) > 0;
  }, null, { timeout: 20000 });
  const canaryWeight = await page.textContent('#weights span[data-version="v2"]');
  must(canaryWeight.includes('v2 1%'), `canary weight shows "${canaryWeight}", want v2 1%`);
  const stableWeight = await page.textContent('#weights span[data-version="v1"]');
  must(stableWeight.includes('99%'), `stable weight shows "${stableWeight}"`);
  must((await page.textContent('#verdict')).length > 10, 'no verdict text');
  must(await page.locator('#findings tr').count() >= 3, 'the findings with numbers are missing');
  must((await page.textContent('#timeline')).includes('step'), 'the timeline lacks the first step');
  await page.screenshot({ path: shotPath('releases-progressing'), fullPage: true });

  must(await page.isEnabled('#pause') && await page.isDisabled('#resume'), 'buttons of a progressing release');
  await page.click('#pause');
  await page.waitForFunction(() => document.querySelector('#phase').textContent === 'paused');
  must(await page.isEnabled('#resume'), 'resume is disabled on a paused release');
  await page.click('#resume');
  await page.waitForFunction(() => document.querySelector('#phase').textContent === 'progressing');

  await page.click('#abort');
  await page.waitForFunction(() => document.querySelector('#phase').textContent === 'aborted');
  await page.waitForFunction(() => !document.querySelector('#weights span[data-version="v2"]'));
  const after = await page.textContent('#weights');
  must(after.includes('v1 100%'), `after abort the weights show "${after}"`);
  must(await page.isDisabled('#abort'), 'abort still enabled after the end');
  must((await page.textContent('#timeline')).includes('abort'), 'the timeline lacks the abort');
  await page.screenshot({ path: shotPath('releases-aborted'), fullPage: true });
  must(errors.length === 0, 'page errors: ' + errors.join('; '));
  console.log('releases page: OK');
} catch (err) {
  const page = browser.contexts()[0]?.pages()[0];
  if (page) {
    await page.screenshot({ path: shotPath('releases-failure'), fullPage: true }).catch(() => {});
    console.error('page error line:', await page.textContent('#error').catch(() => '?'));
    console.error('phase:', await page.textContent('#phase').catch(() => '?'));
  }
  throw err;
} finally {
  await close(browser);
}
