// The live map as a person uses it, in Debian's headless Chromium driven by
// playwright-core (web/node_modules): `locus local` with a simulated fleet,
// the page at its "/", devices appearing and moving, the heat map of a view
// with more devices than the stream shows, a box drawn with the
// mouse over devices this test placed, and the count the page shows held
// against `locus box --count` for the same box. Saves a screenshot.
//
// Usage: node tests/browser/map_test.mjs BIN_DIR SCREENSHOT.png
import {spawn, execFileSync} from 'node:child_process';
import {createRequire} from 'node:module';
import path from 'node:path';
import {fileURLToPath} from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, '../../web/package.json'));
const {chromium} = require('playwright-core');

const [binDir, screenshot] = process.argv.slice(2);
if (!binDir || !screenshot) throw new Error('usage: map_test.mjs BIN_DIR SCREENSHOT.png');

function check(ok, what) {
  if (!ok) throw new Error('map test: ' + what);
  console.log('ok: ' + what);
}

async function until(what, seconds, probe) {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`map test: ${what} within ${seconds} s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// A whole cluster on free ports, with 3,000 simulated devices moving.
const local = spawn(path.join(binDir, 'locus'), [
  'local', '--units', '2', '--simulate', '3000', '--rate', '3000',
  '--gateway-listen', '127.0.0.1:0', '--text-listen', '127.0.0.1:0',
  '--server-listen', '127.0.0.1:0', '--http-listen', '127.0.0.1:0',
  '--gateway-http-listen', '127.0.0.1:0'], {stdio: ['ignore', 'ignore', 'pipe']});
let log = '';
local.stderr.on('data', (d) => { log += d; });
const stop = () => { try { local.kill('SIGINT'); } catch {} };
process.on('exit', stop);

let browser;
try {
  await until('locus local is ready', 30, () => log.includes('ready: '));
  const http = /server HTTP API on http:\/\/(\S+)\/v1\//.exec(log)[1];
  const server = /server listening on (\S+)/.exec(log)[1];
  const gateway = /gateway HTTP ingest on http:\/\/(\S+)\/v1\/reports/.exec(log)[1];

  // Devices of our own, away from the simulated city: they stay put, so the
  // count of a box over them is exact whenever it is asked.
  const ours = [];
  for (let i = 0; i < 40; ++i) {
    ours.push(JSON.stringify({id: `still-${i}`, lat: 10 + (i % 8) * 0.05, lon: 20 + Math.floor(i / 8) * 0.08}));
  }
  const posted = await fetch(`http://${gateway}/v1/reports`, {method: 'POST', body: ours.join('\n')});
  check(posted.status === 200 && !(await posted.text()).includes('false'), 'our 40 devices are stored');

  browser = await chromium.launch({
    executablePath: process.env.LOCUS_CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const page = await browser.newPage({viewport: {width: 1200, height: 800}});
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`http://${http}/`);

  // The city: devices appear, then move.
  const shown = await until('devices appear', 15, () => page.evaluate(() => window.locusMap.devices.size));
  check(shown > 100, `${shown} devices appear in the city view`);
  await until('devices move', 15, () => page.evaluate(() => window.locusMap.moves > 0));
  check(true, 'devices move');
  const status = await page.textContent('#status');
  check(/devices in view/.test(status), `the status says "${status}"`);
  // 3,000 in view, more than the stream's 2,000: a heat map of them all.
  const heat = await until('the heat map', 15, () => page.evaluate(() => window.locusMap.heat));
  check(heat.count === 3000, `the heat map's cells hold all ${heat.count} devices in view`);

  // Our devices: fly there, draw a box with the mouse over part of them.
  await page.evaluate(() => { window.locusMap.map.setView([10.2, 20.15], 10, {animate: false}); });
  await until('our devices appear', 15, () => page.evaluate(() => window.locusMap.devices.has('still-0')));
  await page.click('#draw-box');
  const box = await page.locator('#map').boundingBox();
  const from = {x: box.x + box.width * 0.3, y: box.y + box.height * 0.3};
  const to = {x: box.x + box.width * 0.62, y: box.y + box.height * 0.7};
  await page.mouse.move(from.x, from.y);
  await page.mouse.down();
  await page.mouse.move((from.x + to.x) / 2, (from.y + to.y) / 2, {steps: 5});
  await page.mouse.move(to.x, to.y, {steps: 5});
  await page.mouse.up();
  const area = await until('the box is counted', 10, () => page.evaluate(() => window.locusMap.lastArea));
  const listed = Number((await page.textContent('#area-count')).replace(/,/g, ''));
  check(listed === area.count, `the page lists ${listed} devices in the box`);
  check(area.count > 0 && area.count < 40, `the box holds some of our devices, not all (${area.count})`);

  const q = area.query;
  const cli = JSON.parse(execFileSync(path.join(binDir, 'locus'), [
    '--server', server, 'box', '--south', String(q.south), '--west', String(q.west),
    '--north', String(q.north), '--east', String(q.east), '--count']).toString());
  check(cli.count === listed, `locus box --count agrees: ${cli.count}`);

  // Back to the city for the picture.
  await page.evaluate(() => { window.locusMap.map.setView([31.25, 121.5], 10, {animate: false}); });
  await until('devices appear again', 15, () => page.evaluate(() => window.locusMap.devices.size > 100));
  await page.mouse.click(box.x + box.width * 0.5, box.y + box.height * 0.5);
  await until('the nearest are listed', 10, () => page.evaluate(() => document.querySelectorAll('#nearest li').length === 5));
  check(true, 'a click lists the 5 nearest');
  await page.screenshot({path: screenshot});
  check(errors.length === 0, `no errors in the page ${errors.join('; ')}`);
} finally {
  if (browser) await browser.close();
  stop();
}
