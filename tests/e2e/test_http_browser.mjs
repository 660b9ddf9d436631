// Chromium against the HTTP server: the page at / loads and renders, and a page on another
// origin reads the API through CORS (the way a publish page hosted elsewhere will use WHIP).
// Usage: node test_http_browser.mjs ESTUARY_BASE_URL OTHER_ORIGIN_URL
import { launchBrowser, reporter } from './lib/browser.mjs';

const [base, other] = process.argv.slice(2);
const r = reporter();
const watchdog = setTimeout(() => { console.log('FAIL - timed out after 60 s'); process.exit(1); }, 60000);
const browser = await launchBrowser();
try {
  const page = await browser.context.newPage();
  const resp = await page.goto(`${base}/`, { timeout: 15000 });
  r.check('GET / loads in Chromium', resp && resp.status() === 200, resp && String(resp.status()));
  const h1 = await page.textContent('h1').catch(() => null);
  r.check('index page renders its heading', h1 && h1.includes('Estuary'), String(h1));

  // Same-origin fetch of the API from the served page.
  const version = await page.evaluate(async () => (await fetch('/api/v1/version')).json());
  r.check('page reads /api/v1/version', version.name === 'estuary', JSON.stringify(version));

  // A page on another origin: the browser enforces CORS, including the preflight a JSON POST
  // with Authorization triggers; the 404 body must be readable.
  await page.goto(`${other}/blank.html`, { timeout: 15000 });
  const cross = await page.evaluate(async (b) => {
    const get = await fetch(`${b}/api/v1/streams`);
    const streams = await get.json();
    const post = await fetch(`${b}/api/v1/nothing`, {
      method: 'POST', headers: { 'Content-Type': 'application/sdp', Authorization: 'Bearer x' },
      body: 'v=0\r\n',
    });
    return { streams, status: post.status, body: await post.json() };
  }, base);
  r.check('cross-origin GET reads the stream list', Array.isArray(cross.streams.streams),
    JSON.stringify(cross.streams));
  r.check('cross-origin POST with preflight gets the JSON 404', cross.status === 404 &&
    cross.body.status === 404, JSON.stringify(cross));
} catch (e) {
  r.check('browser test ran', false, e.message);
} finally {
  await browser.close();
  clearTimeout(watchdog);
}
process.exit(r.done());
