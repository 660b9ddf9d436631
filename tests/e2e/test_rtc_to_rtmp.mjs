// WebRTC to RTMP and HTTP-FLV (issue 5, first part): headless Chromium publishes over WHIP with
// H.264 forced; ffmpeg decodes video and AAC audio from RTMP play and from HTTP-FLV. A VP8
// publisher's stream reports RTMP/HTTP-FLV as unavailable with the reason, while WHEP keeps
// working. Usage: node test_rtc_to_rtmp.mjs BASE_URL UDP_PORT RTMP_PORT
import { launchBrowser, reporter } from './lib/browser.mjs';
import { playAndTimeFirstFrame } from './lib/media.mjs';
import { decodeMedia } from './lib/proc.mjs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [base, , rtmpPort] = process.argv.slice(2);
const rtmp = `rtmp://127.0.0.1:${rtmpPort}`;
const r = reporter();
const sleep = (ms) => new Promise(res => setTimeout(res, ms));
const work = mkdtempSync(join(tmpdir(), 'estuary-r2r-'));
const api = (path) => fetch(base + path).then(x => x.ok ? x.json() : null).catch(() => null);

async function publish(browser, stream, codec) {
  const pub = await browser.context.newPage();
  await pub.goto(`${base}/publish.html?app=live&stream=${stream}&codec=${codec}`);
  await pub.waitForFunction(() => typeof window.estuaryPublish === 'function');
  await pub.evaluate(() => window.estuaryPublish());
  let s = null;
  for (let i = 0; i < 50 && !(s?.packets_in > 100); i++) { await sleep(200); s = await api(`/api/v1/streams/live/${stream}`); }
  r.check(`Chromium publishes ${codec} over WHIP`, s?.packets_in > 100, JSON.stringify(s));
  return pub;
}

const browser = await launchBrowser();
try {
  // 1. H.264 from the browser to RTMP and HTTP-FLV players. Chromium's fake camera is 640x480 at
  //    20 fps; its fake microphone beeps.
  const pub = await publish(browser, 'wr', 'H264');
  for (const [name, url] of [['RTMP play', `${rtmp}/live/wr`], ['HTTP-FLV', `${base}/live/wr.flv`]]) {
    const m = await decodeMedia(url, 4, join(work, name.replace(/\W/g, '')));
    r.check(`${name} of a WebRTC stream: ffmpeg decodes H.264 frames (${m.frames} in 4 s)`, m.frames >= 4 * 20 * 0.6, JSON.stringify(m));
    r.check(`${name}: the picture has detail and moves`, m.spread > 40 && m.motion > 0.5, JSON.stringify(m));
    r.check(`${name}: ffmpeg decodes AAC audio with energy (${m.samples} samples, RMS ${m.rms.toFixed(0)})`,
      m.samples >= 4 * 8000 * 0.7 && m.rms > 50, JSON.stringify(m));
  }
  const info = await api('/api/v1/streams/live/wr');
  r.check('the API shows the WebRTC -> RTMP bridge with H.264 and Opus -> AAC',
    info?.rtc_to_rtmp?.video === 'H264' && info?.rtc_to_rtmp?.audio === 'opus->AAC' && info?.rtc_to_rtmp?.aac_frames > 50,
    JSON.stringify(info?.rtc_to_rtmp));
  await pub.evaluate(() => window.estuaryStop());
  await pub.close();

  // 2. VP8 cannot go to FLV: the API says why; WHEP still works.
  const vp8 = await publish(browser, 'wr8', 'VP8');
  const flvTry = await decodeMedia(`${base}/live/wr8.flv`, 1, join(work, 'vp8'));
  let s8 = null;
  for (let i = 0; i < 20 && !s8?.flv_unavailable; i++) { await sleep(200); s8 = await api('/api/v1/streams/live/wr8'); }
  r.check('a VP8 stream reports RTMP/HTTP-FLV/HLS unavailable with the reason', /VP8/.test(s8?.flv_unavailable || ''), JSON.stringify(s8));
  r.check('no video reaches an HTTP-FLV player of the VP8 stream', flvTry.frames === 0, JSON.stringify(flvTry));
  const page = await browser.context.newPage();
  await page.goto(`${base}/play.html?app=live&stream=wr8`);
  await page.waitForFunction(() => typeof window.estuaryPlay === 'function');
  let ms = null;
  try { ms = await playAndTimeFirstFrame(page, 10000); } catch (e) { /* checked below */ }
  r.check('WHEP playback of the VP8 stream keeps working', ms !== null);
  await vp8.evaluate(() => window.estuaryStop());
} catch (e) {
  r.check('test ran to the end', false, e.stack);
} finally {
  await browser.close();
  rmSync(work, { recursive: true, force: true });
}
process.exit(r.done());
