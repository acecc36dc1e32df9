// Shared launcher for the UI scripts: Debian's chromium, headless, with the
// flags this closed network needs (no background connections).
import { chromium } from 'playwright-core';

export async function launch(extraArgs = []) {
  const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
  return chromium.launch({
    executablePath,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync', ...extraArgs],
  });
}

// Where screenshots go: kept as test artefacts.
export function shotPath(name) {
  const dir = process.env.PAVE_ARTIFACTS || 'test-artifacts';
  return `${dir}/${name}.png`;
}

export function must(cond, msg) {
  if (!cond) { console.error('FAIL: ' + msg); process.exit(1); }
}
