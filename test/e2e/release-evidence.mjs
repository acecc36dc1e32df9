// The releases page's evidence plots, end to end in headless Chromium:
// for a release run by `pave up`, three uPlot charts (request rate, error
// ratio, p99) with a line for stable and one for the canary, read from the
// metrics store over the release's time span, and its steps marked on the
// time axis. Usage: node release-evidence.mjs BASE_URL RELEASE STABLE
// CANARY; cmd/pave TestReleaseEvidencePlotsInChromium runs it.
import { launch, close, shotPath, must } from './browser.mjs';

const [base, name, stable, canary] = process.argv.slice(2);
must(base && name && stable && canary, 'usage: node release-evidence.mjs BASE_URL RELEASE STABLE CANARY');

const browser = await launch();
try {
  const page = await browser.newPage({ viewport: { width: 1500, height: 1100 } });
  // The page draws from `pave up`'s APIs, on a machine a whole test run
  // loads: a minute, not Playwright's 30 s, for each wait and navigation.
  page.setDefaultTimeout(60000);
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${base}/ui/releases.html?name=${encodeURIComponent(name)}`);
  // The page redraws the evidence when the release's events change (the
  // scale-down after the promotion may come after the first draw): read
  // the plots once a whole set is drawn, again if a redraw began meanwhile.
  let plots = [];
  for (let tries = 0; tries < 5 && plots.length !== 3; tries++) {
    await page.waitForSelector(`#evidence[data-release="${name}"][data-points]`, { timeout: 60000 });
    plots = await page.$$eval('#evidence[data-points] figure.plot', (fs) => fs.map((f) => ({
      title: f.dataset.title, canvas: !!f.querySelector('canvas'), points: Number(f.dataset.points || 0), marks: Number(f.dataset.marks || 0),
      legend: [...f.querySelectorAll('.u-legend .u-series th')].map((th) => th.textContent.trim()).filter(Boolean),
    })));
  }
  must((await page.textContent('#evidence-error')) === '', `evidence error: ${await page.textContent('#evidence-error')}`);
  console.log(JSON.stringify(plots));
  must(plots.length === 3, `want 3 evidence plots, got ${JSON.stringify(plots)}`);
  const want = { 'Requests per second': [stable, canary], 'Error ratio': [stable, canary], 'Latency p99': ['p99 ' + stable, 'p99 ' + canary] };
  for (const p of plots) {
    must(p.canvas, `plot ${p.title} has no canvas`);
    for (const l of want[p.title] || ['?']) must(p.legend.includes(l), `plot ${p.title} lacks a line for ${l}: ${p.legend}`);
    must(p.points >= 20, `plot ${p.title}: only ${p.points} points over the release`);
    // Every step of the release (3 weights) and its end (promoted).
    must(p.marks >= 4, `plot ${p.title}: ${p.marks} marks, want the 3 steps and the promotion`);
  }
  // Under the cursor near the right edge (after the promotion) the canary
  // carries traffic and stable's rate has fallen to (nearly) nothing. The
  // last points may show the load generator stopping (rates falling to
  // 0), so walk left until the canary carries more than a trickle. The
  // walk is one call into the page (uPlot redraws its legend within the
  // mousemove handler): a round trip per position took 3 s on a loaded CI
  // machine. The real mouse then goes to the point found.
  const rpsPlot = '#evidence figure.plot[data-title="Requests per second"]';
  const x = await page.$eval(rpsPlot, (f, canary) => {
    const over = f.querySelector('.u-over');
    const r = over.getBoundingClientRect();
    for (let x = r.width - 2; x > r.width * 0.5; x -= 6) {
      over.dispatchEvent(new MouseEvent('mousemove', { clientX: r.left + x, clientY: r.top + r.height / 2, bubbles: true }));
      const c = [...f.querySelectorAll('.u-legend .u-series')].map((s) => s.textContent).find((t) => t.startsWith(canary));
      if (c && parseFloat(c.slice(canary.length)) > 5) return x;
    }
    return r.width - 2;
  }, canary);
  const box = await page.locator(`${rpsPlot} .u-over`).boundingBox();
  await page.mouse.move(box.x + x, box.y + box.height / 2);
  const rows = await page.$$eval(`${rpsPlot} .u-legend .u-series`, (rs) => rs.map((r) => r.textContent));
  const rate = (v) => parseFloat((rows.find((r) => r.startsWith(v)) || '').slice(v.length));
  must(rate(canary) > 5, `the canary's rate after promotion (the load is 60 requests/s): ${rows}`);
  must(!(rate(stable) > rate(canary)), `stable still takes more than the canary after promotion: ${rows}`);
  const timeline = await page.textContent('#timeline');
  must(timeline.includes('local: v2=100') && !timeline.includes('NaN'), `the timeline's weights: ${timeline}`);
  must(errors.length === 0, `page errors: ${errors}`);
  await page.screenshot({ path: shotPath('release-evidence'), fullPage: true });
  console.log(`ok: ${plots.map((p) => `${p.title} ${p.points} points ${p.marks} marks`).join('; ')}; at the end ${rows}`);
} finally {
  await close(browser);
}
