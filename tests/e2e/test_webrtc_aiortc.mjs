// Estuary between two independent WebRTC stacks: aiortc (Debian's python3-aiortc) publishes and
// Chromium plays; Chromium publishes and aiortc plays. Asserts on decoded media on both sides.
// Usage: node test_webrtc_aiortc.mjs BASE_URL
import { launchBrowser, reporter } from './lib/browser.mjs';
import { playAndTimeFirstFrame, observeMedia } from './lib/media.mjs';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const [base] = process.argv.slice(2);
const client = join(dirname(fileURLToPath(import.meta.url)), 'aiortc_client.py');
const r = reporter();
const sleep = (ms) => new Promise(res => setTimeout(res, ms));

function runClient(args) {
  const p = spawn('/usr/bin/python3', [client, ...args]);
  let out = '', err = '';
  p.stdout.on('data', d => { out += d; });
  p.stderr.on('data', d => { err += d; });
  const done = new Promise(res => p.on('close', code => res({ code, out, err })));
  return { proc: p, done };
}

async function waitForStream(path, timeoutMs = 15000) {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    const s = await fetch(base + path).then(x => x.ok ? x.json() : null).catch(() => null);
    if (s && s.packets_in > 30) return s;
    await sleep(200);
  }
  return null;
}

const browser = await launchBrowser();
try {
  // 1. aiortc publishes, Chromium plays.
  const pub = runClient(['publish', `${base}/whip/live/aio`, '25']);
  const info = await waitForStream('/api/v1/streams/live/aio');
  r.check('aiortc publishes over WHIP (media reaches the stream)', !!info, (await Promise.race([pub.done, sleep(10)]))?.err);
  if (info) {
    const page = await browser.context.newPage();
    await page.goto(`${base}/play.html?app=live&stream=aio`);
    await page.waitForFunction(() => typeof window.estuaryPlay === 'function');
    try {
      const ms = await playAndTimeFirstFrame(page, 15000);
      console.log(`# aiortc -> Chromium: first decoded frame ${ms.toFixed(0)} ms after the WHEP POST`);
      await page.bringToFront();
      const m = await observeMedia(page, 3000);
      r.check(`Chromium decodes aiortc's video (${m.frames} frames in 3 s)`, m.frames >= 20, JSON.stringify(m));
      r.check(`Chromium sees aiortc's 640x480 picture with detail that moves`, m.width === 640 && m.height === 480 && m.spread > 40 && m.changedSamples > 0, JSON.stringify(m));
      r.check('Chromium receives aiortc\'s tone', m.audioSamples > 48000 && m.audioEnergy > 0, JSON.stringify(m));
    } catch (e) {
      r.check('Chromium decodes aiortc\'s video', false, e.message);
    }
    await page.evaluate(() => window.estuaryStop());
    await page.close();
  }
  pub.proc.kill('SIGTERM');
  await pub.done;

  // 2. Chromium publishes (H.264), aiortc plays.
  const pubPage = await browser.context.newPage();
  await pubPage.goto(`${base}/publish.html?app=live&stream=chr&codec=H264`);
  await pubPage.waitForFunction(() => typeof window.estuaryPublish === 'function');
  await pubPage.evaluate(() => window.estuaryPublish());
  const info2 = await waitForStream('/api/v1/streams/live/chr');
  r.check('Chromium publishes H.264 over WHIP', !!info2);
  const player = runClient(['play', `${base}/whep/live/chr`, '6']);
  const res = await player.done;
  let m = {};
  try { m = JSON.parse(res.out.trim().split('\n').pop()); } catch { m = { error: res.out + res.err }; }
  console.log(`# Chromium -> aiortc: ${JSON.stringify(m)}`);
  r.check(`aiortc decodes Chromium's H.264 video (${m.video_frames} frames in 6 s)`, m.video_frames >= 40, JSON.stringify(m) + res.err.slice(-500));
  r.check(`aiortc sees Chromium's ${m.width}x${m.height} picture with detail that moves`, m.width === 640 && m.height === 480 && m.spread > 40 && m.moved, JSON.stringify(m));
  r.check(`aiortc decodes Chromium's audio (${m.audio_samples} samples)`, m.audio_frames >= 100 && m.audio_samples > 0, JSON.stringify(m));
  await pubPage.evaluate(() => window.estuaryStop());
  await pubPage.close();
} catch (e) {
  r.check('aiortc scenario ran to the end', false, e.stack);
} finally {
  await browser.close();
}
process.exit(r.done());
