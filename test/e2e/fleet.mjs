// The fleet pages end to end in headless Chromium: the service fleet
// table (triage order, sorting), the service map (dagre layout, edge
// colours, canary node, click to a failing request) and the clusters page
// (drain buttons only for the roles the API lets drain). Usage: node fleet.mjs BASE_URL (or PAVE_URL);
// fleet_test.go serves real data.
import { launch, close, shotPath, must } from './browser.mjs';

const base = process.argv[2] || process.env.PAVE_URL;
must(base, 'usage: node fleet.mjs BASE_URL (or set PAVE_URL)');

const browser = await launch();
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('dialog', (d) => d.accept());

  // Service fleet: unreadable first, then the oldest; sortable by name.
  await page.goto(base + '/ui/services-fleet.html');
  await page.waitForSelector('tr[data-service="orders"]', { timeout: 60000 });
  const order = () => page.$$eval('#rows tr', (trs) => trs.map((tr) => tr.dataset.service));
  let names = await order();
  must(JSON.stringify(names) === JSON.stringify(['gone', 'ledger', 'orders']), `triage order: ${names}`);
  const ledger = await page.textContent('tr[data-service="ledger"]');
  must(ledger.includes('behind'), `ledger row: ${ledger}`);
  await page.click('th[data-key="name"]');
  await page.click('th[data-key="name"]');
  names = await order();
  must(JSON.stringify(names) === JSON.stringify(['orders', 'ledger', 'gone']), `name descending: ${names}`);
  await page.screenshot({ path: shotPath('services-fleet'), fullPage: true });

  // Service map.
  await page.goto(base + '/ui/servicemap.html');
  await page.waitForSelector('body[data-loaded="true"]', { timeout: 30000 });
  const nodes = await page.$$eval('#map g.node', (gs) => gs.map((g) => g.dataset.id + (g.classList.contains('canary') ? '*' : '')));
  must(['checkout', 'orders', 'payments', 'orders@v2*'].every((n) => nodes.includes(n)), `nodes: ${nodes}`);
  const colour = (from, to) => page.getAttribute(`#map g.edge[data-from="${from}"][data-to="${to}"]`, 'data-colour');
  must(await colour('orders', 'payments') === '#c0392b', 'orders → payments (20% errors) is not red');
  must(await colour('checkout', 'orders') === '#27ae60', 'checkout → orders (no errors) is not green');
  must(await colour('checkout', 'orders@v2') === '#27ae60', 'no edge to the canary node');
  const boxes = await page.$$eval('#map g.node', (gs) => gs.map((g) => g.getAttribute('transform')));
  must(new Set(boxes).size === boxes.length, `nodes overlap: ${boxes}`);
  await page.screenshot({ path: shotPath('servicemap'), fullPage: true });
  // One cluster's map: busan's edges only (mobile calls orders there).
  const edgeIds = () => page.$$eval('#map g.edge', (gs) => gs.map((g) => `${g.dataset.from}>${g.dataset.to}`).sort().join(' '));
  must((await edgeIds()).includes('mobile>orders'), `all clusters: ${await edgeIds()}`);
  await page.selectOption('#cluster', 'busan');
  must(await edgeIds() === 'checkout>orders mobile>orders', `busan edges: ${await edgeIds()}`);
  must(!(await page.$$eval('#map g.node', (gs) => gs.map((g) => g.dataset.id))).includes('payments'), 'payments shown in busan');
  must(await page.$$eval('#edges tr', (trs) => trs.every((tr) => tr.children[2].textContent === 'busan')), 'edge table not filtered to busan');
  await page.selectOption('#cluster', 'seoul');
  must(!(await edgeIds()).includes('mobile>orders'), `seoul edges: ${await edgeIds()}`);
  await page.selectOption('#cluster', '');
  await page.click('#map g.edge[data-from="orders"][data-to="payments"] path', { force: true });
  await page.waitForURL(/request\.html\?trace=4bf92f3577b34da6a3ce929d0e0e4736/, { timeout: 30000 });

  // Clusters: drain busan with the button.
  await page.goto(base + '/ui/clusters.html');
  await page.waitForSelector('tr[data-cluster="busan"]', { timeout: 30000 });
  const busan = await page.textContent('tr[data-cluster="busan"]');
  must(busan.includes('serving') && busan.includes('dc-busan'), `busan row: ${busan}`);
  // The buttons show only for a token the API lets drain (GET
  // /api/v1/whoami): none without a token or with a viewer's, which the
  // API refuses anyway; a deployer's drains.
  const noButtons = async (who) => {
    await page.waitForSelector('tr[data-cluster="busan"] [data-needs="deployer"]', { timeout: 30000 });
    must(await page.$$eval('#clusters button', (bs) => bs.length) === 0, `${who} sees drain buttons`);
    const title = await page.getAttribute('tr[data-cluster="busan"] [data-needs]', 'title');
    must(title.includes('deployer'), `${who}: the note does not say which role is needed: ${title}`);
  };
  await noButtons('anonymous');
  must((await page.textContent('#who')).includes('not signed in'), `who line: ${await page.textContent('#who')}`);
  await page.evaluate((tok) => localStorage.setItem('pave.token', tok), process.env.PAVE_VIEWER_TOKEN);
  await page.reload();
  await noButtons('viewer');
  must((await page.textContent('#who')).includes('viewer (viewer)'), `who line: ${await page.textContent('#who')}`);
  // The page is a convenience: the API itself refuses a viewer's drain.
  const status = await page.evaluate(async (tok) => (await fetch('/api/v1/clusters/busan/drain', {
    method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: 'Bearer ' + tok }, body: '{}' })).status,
  process.env.PAVE_VIEWER_TOKEN);
  must(status === 403, `a viewer's drain answered ${status}, want 403`);
  await page.evaluate((tok) => localStorage.setItem('pave.token', tok), process.env.PAVE_ADMIN_TOKEN);
  await page.reload();
  await page.waitForSelector('tr[data-cluster="busan"] button[data-action="drain"]', { timeout: 30000 });
  must(await page.$$eval('#clusters [data-needs]', (ns) => ns.length) === 0, 'an admin is told a role is missing');
  await page.evaluate((tok) => localStorage.setItem('pave.token', tok), process.env.PAVE_DEPLOYER_TOKEN);
  await page.reload();
  await page.click('tr[data-cluster="busan"] button[data-action="drain"]', { timeout: 30000 });
  await page.waitForSelector('tr[data-cluster="busan"] button[data-action="undrain"]', { timeout: 30000 })
    .catch(async (e) => { throw new Error(`${e.message}\nerror line: ${await page.textContent('#error')}\nrow: ${await page.textContent('tr[data-cluster="busan"]')}`); });
  must((await page.textContent('tr[data-cluster="busan"]')).includes('draining'), 'busan is not shown draining');
  await page.screenshot({ path: shotPath('clusters'), fullPage: true });
  must(errors.length === 0, `page errors: ${errors}`);
  console.log(`ok: fleet table ${names.length} rows, map ${nodes.length} nodes, busan drained`);
} finally {
  await close(browser);
}
