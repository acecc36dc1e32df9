// Shared launcher for the UI scripts: Debian's chromium, headless, with the
// flags this closed network needs (no background connections).
//
// A script that stalls must still say where: Playwright's own log (each
// API call, what it waits for, the browser's output) is kept in a ring and
// printed when the script fails, when its budget runs out
// (PAVE_BROWSER_BUDGET_MS, set by internal/testproc.RunBrowserScript a
// little below the test's deadline) and when it is asked to stop
// (SIGTERM), before the test's process kill would leave no trace.
import { chromium } from 'playwright-core';

const started = Date.now();
const recent = [];
const keep = 200;

function elapsed() {
  return `${((Date.now() - started) / 1000).toFixed(1)}s`;
}

function remember(line) {
  recent.push(`[${elapsed()}] ${line}`);
  if (recent.length > keep) recent.shift();
}

// Where the time went, for the one line a CI summary shows of a failure:
// the Playwright calls still running and the slowest that ended. The log
// ring below says the same in full, but only its end survives a summary.
const running = new Map(); // call name -> start times (ms) of its calls in flight
const slowest = []; // [seconds, name] of ended calls, slowest first, at most 3

function track(message) {
  const m = /^(=>|<=) (\S+) (started|succeeded|failed)/.exec(message);
  if (!m) return;
  const starts = running.get(m[2]) || [];
  if (m[1] === '=>') {
    running.set(m[2], [...starts, Date.now()]);
    return;
  }
  if (starts.length === 0) return;
  const took = (Date.now() - starts.shift()) / 1000;
  if (starts.length === 0) running.delete(m[2]);
  slowest.push([took, `${m[2]} ${took.toFixed(1)}s${m[3] === 'failed' ? ' (failed)' : ''}`]);
  slowest.sort((a, b) => b[0] - a[0]);
  slowest.length = Math.min(slowest.length, 3);
}

function timeSummary() {
  const now = Date.now();
  const inFlight = [...running].flatMap(([name, starts]) => starts.map((t) => `${name} for ${((now - t) / 1000).toFixed(1)}s`));
  const parts = [];
  if (inFlight.length > 0) parts.push(`still running: ${inFlight.join(', ')}`);
  if (slowest.length > 0) parts.push(`slowest calls: ${slowest.map((s) => s[1]).join(', ')}`);
  return parts.length > 0 ? ` (${parts.join('; ')})` : '';
}

function report(why) {
  if (recent.length === 0) {
    console.error(why);
    return;
  }
  console.error(`${why}${timeSummary()}; Playwright's last ${recent.length} log lines:\n${recent.join('\n')}`);
}

const budget = Number(process.env.PAVE_BROWSER_BUDGET_MS || 0);
if (budget > 0) {
  setTimeout(() => {
    report(`FAIL: the script ran out of its ${budget} ms budget after ${elapsed()}`);
    process.exit(2);
  }, budget).unref();
}
process.on('SIGTERM', () => {
  report(`FAIL: stopped from outside (SIGTERM) after ${elapsed()}`);
  process.exit(2);
});

const logger = {
  // 'protocol' would log every DevTools message: too many to keep.
  isEnabled: (name) => name === 'api' || name === 'browser',
  log: (name, severity, message) => {
    if (name === 'api') track(message);
    remember(`${name} ${message}`);
  },
};

const launchTimeout = 45000;

// launch starts Chromium. A start that stalls (seen once on a loaded CI
// machine: no output for two minutes) is reported with the browser's own
// output and tried once more, so one wedged start fails no UI test.
export async function launch(extraArgs = []) {
  const options = {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    timeout: launchTimeout,
    logger,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync', ...extraArgs],
  };
  // Playwright's log does not time its own launch: timed here alike.
  track('=> chromium.launch started');
  let outcome = 'failed';
  try {
    let browser;
    try {
      browser = await chromium.launch(options);
    } catch (e) {
      report(`Chromium did not start (${e.message.split('\n')[0]}); trying once more`);
      browser = await chromium.launch(options);
    }
    outcome = 'succeeded';
    return browser;
  } finally {
    track(`<= chromium.launch ${outcome}`);
  }
}

// close closes the browser, but waits no more than 15 s for it: a script
// that failed must print its error rather than hang on a browser that no
// longer answers (Playwright kills its processes when node exits). It
// first prints where the script's time went, so that a run that passed
// slowly can be compared with one that ran out of its budget.
export async function close(browser) {
  console.log(`done after ${elapsed()}${timeSummary()}`);
  let timer;
  const gaveUp = new Promise((resolve) => {
    timer = setTimeout(() => resolve('timeout'), 15000);
  });
  const how = await Promise.race([browser.close().then(() => 'closed'), gaveUp]);
  clearTimeout(timer);
  if (how === 'timeout') report(`the browser did not close within 15 s (at ${elapsed()})`);
}

// Where screenshots go: kept as test artefacts.
export function shotPath(name) {
  const dir = process.env.PAVE_ARTIFACTS || 'test-artifacts';
  return `${dir}/${name}.png`;
}

export function must(cond, msg) {
  if (!cond) {
    console.error('FAIL: ' + msg);
    report('what led to it');
    process.exit(1);
  }
}

// An error thrown out of a script (a selector that never showed, a
// navigation that failed) gets the same log.
process.on('uncaughtException', (e) => {
  console.error(e);
  report('what led to it');
  process.exit(1);
});
process.on('unhandledRejection', (e) => {
  console.error(e);
  report('what led to it');
  process.exit(1);
});
