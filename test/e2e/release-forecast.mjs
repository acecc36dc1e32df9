// The releases page's forecast, end to end in headless Chromium: a
// release of a low-traffic service shows the warning that it will likely
// pause for a person, with its remedies, and the per-step forecast; one of
// a busy service shows the expected time instead; one of a low-traffic
// service with a time budget says why it added a shadow step of its own
// (status.forecast.shadowAdded). Usage: node release-forecast.mjs
// BASE_URL QUIET_RELEASE BUSY_RELEASE [SHADOW_RELEASE]; cmd/pave
// TestReleaseForecastWarnsLowTrafficUpFront runs it.
import { launch, close, shotPath, must } from './browser.mjs';

const [base, quiet, busy, shadow] = process.argv.slice(2);
must(base && quiet && busy, 'usage: node release-forecast.mjs BASE_URL QUIET_RELEASE BUSY_RELEASE');

const browser = await launch();
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  // The page draws from `pave up`'s APIs, on a machine a whole test run
  // loads: a minute, not Playwright's 30 s, for each wait and navigation.
  page.setDefaultTimeout(60000);
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));

  await page.goto(`${base}/ui/releases.html?name=${encodeURIComponent(quiet)}`);
  await page.waitForSelector('#forecast[data-pause-likely="true"]', { timeout: 60000 });
  const warning = await page.textContent('#forecast');
  console.log(`${quiet}: ${warning}`);
  for (const want of ['Warning:', 'will likely pause for a person', '--shadow', '--max-duration']) {
    must(warning.includes(want), `${quiet}: the warning lacks "${want}": ${warning}`);
  }
  must(await page.isVisible('#forecast-detail'), 'the per-step forecast is hidden');
  await page.click('#forecast-detail summary');
  const steps = await page.$$eval('#forecast-steps tr', (rs) => rs.map((r) => [...r.children].map((td) => td.textContent)));
  console.log(JSON.stringify(steps));
  must(steps.length >= 2 && steps[0][1] === '1%' && steps[0][4] === 'min-samples', `${quiet}: per-step forecast ${JSON.stringify(steps)}`);
  must(await page.isHidden('#shadow-added'), `${quiet}: added no shadow step, yet the page says so: ${await page.textContent('#shadow-added')}`);
  await page.screenshot({ path: shotPath('release-forecast-warning'), fullPage: true });

  await page.goto(`${base}/ui/releases.html?name=${encodeURIComponent(busy)}`);
  await page.waitForSelector('#forecast[data-pause-likely="false"]', { timeout: 60000 }).catch(async (e) => {
    must(false, `${busy}: no forecast without a warning (${e.message}); phase ${await page.textContent('#phase')}: ${await page.textContent('#message')}; forecast ${await page.textContent('#forecast')}`);
  });
  const ok = await page.textContent('#forecast');
  console.log(`${busy}: ${ok}`);
  must(ok.startsWith('Forecast: the judges should decide in about') && !ok.includes('Warning'), `${busy}: ${ok}`);
  await page.screenshot({ path: shotPath('release-forecast-ok'), fullPage: true });

  if (shadow) {
    await page.goto(`${base}/ui/releases.html?name=${encodeURIComponent(shadow)}`);
    await page.waitForSelector('#shadow-added:not([hidden])', { timeout: 60000 }).catch(async (e) => {
      must(false, `${shadow}: no shadow-added note (${e.message}); phase ${await page.textContent('#phase')}: ${await page.textContent('#message')}`);
    });
    const note = await page.textContent('#shadow-added');
    console.log(`${shadow}: ${note}`);
    for (const want of ['Shadow step added automatically: added a 1m shadow step', 'requests/s the canary\'s own share would likely not decide within spec.maxDuration', '--shadow 0 opts out']) {
      must(note.includes(want), `${shadow}: the note lacks "${want}": ${note}`);
    }
    // The per-step forecast shows while the release runs; its shadow
    // step may have ended it already on a loaded machine.
    console.log(`${shadow}: phase ${await page.textContent('#phase')}: ${await page.textContent('#message')}`);
    if (await page.isVisible('#forecast-detail')) {
      await page.click('#forecast-detail summary');
      const rows = await page.$$eval('#forecast-steps tr', (rs) => rs.map((r) => [...r.children].map((td) => td.textContent)));
      console.log(JSON.stringify(rows));
      must(rows.length >= 2 && rows[0][0] === 'shadow' && rows[0][1] === 'mirrored', `${shadow}: the per-step forecast does not begin with the shadow step: ${JSON.stringify(rows)}`);
    }
    await page.screenshot({ path: shotPath('release-forecast-shadow-added'), fullPage: true });
  }
  must(errors.length === 0, `page errors: ${errors}`);
  console.log('ok');
} finally {
  await close(browser);
}
