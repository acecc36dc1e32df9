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
    // The per-step forecast shows while the release runs, from the step
    // it is in: the shadow step first while it mirrors ("no weight yet"),
    // then the weighted step the release has reached (a loaded machine
    // may be there before this page is). The forecast is redrawn once a
    // step's window is 10 s old, so the two are waited for to agree. The
    // shadow step may also have ended the release: no forecast then, and
    // the phase says so.
    const agree = () => {
      const detail = document.getElementById('forecast-detail');
      const step = document.getElementById('step').textContent;
      const rows = [...document.querySelectorAll('#forecast-steps tr')].map((r) => [...r.children].map((td) => td.textContent));
      const phase = document.getElementById('phase').textContent;
      if (detail.hidden) return ['promoted', 'rolled back', 'aborted', 'failed'].includes(phase) ? { ended: true, step, rows } : null;
      if (rows.length === 0) return null;
      const at = /^step (\d+)\/\d+ \(([\d.]+)%\)$/.exec(step);
      const ok = step === 'no weight yet'
        ? rows.length >= 2 && rows[0][0] === 'shadow' && rows[0][1] === 'mirrored'
        : at !== null && rows[0][0] === at[1] && rows[0][1] === `${at[2]}%`;
      return ok ? { ended: false, step, rows } : null;
    };
    const seen = await page.waitForFunction(agree, null, { timeout: 60000 }).then((h) => h.jsonValue()).catch(async (e) => {
      const now = await page.evaluate(() => [document.getElementById('step').textContent,
        [...document.querySelectorAll('#forecast-steps tr')].map((r) => [...r.children].map((td) => td.textContent))]);
      must(false, `${shadow}: the per-step forecast does not begin with the step the release is in (${e.message.split('\n')[0]}): ${JSON.stringify(now)}`);
    });
    console.log(`${shadow}: phase ${await page.textContent('#phase')}: ${await page.textContent('#message')}; ${seen.step}; forecast ${JSON.stringify(seen.rows)}`);
    if (!seen.ended) await page.click('#forecast-detail summary');
    await page.screenshot({ path: shotPath('release-forecast-shadow-added'), fullPage: true });
  }
  must(errors.length === 0, `page errors: ${errors}`);
  console.log('ok');
} finally {
  await close(browser);
}
