// Attacks on the API from web pages, in headless Chromium: a page of
// another origin tries a form POST, a text/plain fetch and a JSON fetch;
// a DNS-rebinding page (evil.test resolving to the API's address) tries
// to read and write. Each must fail; the Go test (attack_test.go) then
// checks that nothing changed. Usage: node attack.mjs API_URL EVIL_URL
import { launch, close, must } from './browser.mjs';

const [api, evil] = process.argv.slice(2);
must(api && evil, 'usage: node attack.mjs API_URL EVIL_URL');
const apiPort = new URL(api).port;

const browser = await launch(['--host-resolver-rules=MAP evil.test 127.0.0.1']);
try {
  const page = await browser.newPage();

  // 1. Another origin: the evil page auto-submits a form that would
  // create an admin token, then tries fetch with text/plain and JSON.
  await page.goto(evil + '/');
  await page.waitForFunction(() => window.formSent === true);
  await page.waitForTimeout(500);
  const plain = await page.evaluate(async (api) => {
    try {
      const r = await fetch(api + '/api/v1/releases/shop-v2/promote', { method: 'POST', mode: 'no-cors', headers: { 'Content-Type': 'text/plain' }, body: '{}' });
      return 'sent (' + r.type + ')';
    } catch (e) { return 'blocked: ' + e.message; }
  }, api);
  console.log('text/plain fetch:', plain);
  const json = await page.evaluate(async (api) => {
    try {
      const r = await fetch(api + '/api/v1/tokens', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"role":"admin"}' });
      return 'answered ' + r.status;
    } catch (e) { return 'blocked: ' + e.message; }
  }, api);
  console.log('JSON fetch:', json);
  must(json.startsWith('blocked'), 'a cross-origin JSON fetch must fail its CORS preflight, got ' + json);
  const read = await page.evaluate(async (api) => {
    try { const r = await fetch(api + '/api/v1/releases'); return 'read ' + r.status + ' ' + (await r.text()).length; } catch (e) { return 'blocked: ' + e.message; }
  }, api);
  console.log('cross-origin read:', read);
  must(read.startsWith('blocked'), 'another origin must not read the API, got ' + read);

  // 2. DNS rebinding: the page's own origin now points at the API.
  const rebound = `http://evil.test:${apiPort}`;
  const resp = await page.goto(rebound + '/ui/releases.html');
  console.log('rebinding page load:', resp.status());
  must(resp.status() === 421, 'the API served a rebinding page: ' + resp.status());
  const rebindWrite = await page.evaluate(async () => {
    const r = await fetch('/api/v1/tokens', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"role":"admin"}' });
    return r.status;
  });
  const rebindRead = await page.evaluate(async () => (await fetch('/api/v1/releases')).status);
  console.log('rebinding write/read:', rebindWrite, rebindRead);
  must(rebindWrite === 421 && rebindRead === 421, `rebinding got ${rebindWrite}/${rebindRead}, want 421/421`);

  // 3. The real UI, same origin, still reads.
  await page.goto(api + '/ui/releases.html');
  await page.waitForSelector('#list tr[data-name="shop-v2"]');
  console.log('same-origin UI: ok');
} finally {
  await close(browser);
}
