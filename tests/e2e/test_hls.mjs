// HLS end to end (issue 5): ffmpeg publishes over RTMP, Chromium (H.264) and aiortc publish over
// WHIP; the playlist appears within seconds and ffmpeg decodes video and audio from it; content
// types, cache headers, CORS and 404s; the stream's HLS folder is gone a while after its
// publisher left. Usage: node test_hls.mjs BASE_URL UDP_PORT RTMP_PORT (ES_WORK: server folder)
import { launchBrowser, reporter } from './lib/browser.mjs';
import { run, decodeMedia } from './lib/proc.mjs';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const [base, , rtmpPort] = process.argv.slice(2);
const hlsRoot = join(process.env.ES_WORK, 'hls');
const r = reporter();
const sleep = (ms) => new Promise(res => setTimeout(res, ms));
const work = mkdtempSync(join(tmpdir(), 'estuary-hls-'));
const aiortc = join(dirname(fileURLToPath(import.meta.url)), 'aiortc_client.py');

// Waits for the playlist to list at least `segments` segments; returns its text or null.
async function waitPlaylist(url, segments, timeoutMs) {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    const res = await fetch(url).catch(() => null);
    if (res?.ok) {
      const text = await res.text();
      if ((text.match(/^#EXTINF:/gm) || []).length >= segments) return text;
    }
    await sleep(300);
  }
  return null;
}

async function checkHls(name, stream, { minFps, tone, timeoutMs = 20000, segments = 2 }) {
  const url = `${base}/live/${stream}.m3u8`;
  const t0 = Date.now();
  const pl = await waitPlaylist(url, segments, timeoutMs);
  r.check(`${name}: the HLS playlist lists segments (${pl ? ((Date.now() - t0) / 1000).toFixed(1) + ' s' : 'none'})`,
    !!pl && /#EXT-X-TARGETDURATION:\d+/.test(pl) && /#EXT-X-PROGRAM-DATE-TIME:/.test(pl) && /#EXT-X-MEDIA-SEQUENCE:\d+/.test(pl), pl);
  if (!pl) return;
  const m = await decodeMedia(url, 3, join(work, stream));
  r.check(`${name}: ffmpeg decodes video from HLS (${m.frames} frames in 3 s)`, m.frames >= 3 * minFps * 0.7, JSON.stringify(m));
  r.check(`${name}: the HLS picture has detail and moves`, m.spread > 40 && m.motion > 0.5, JSON.stringify(m));
  r.check(`${name}: ffmpeg decodes audio with energy from HLS (RMS ${m.rms.toFixed(0)}${tone ? `, ${m.hz.toFixed(0)} Hz` : ''})`,
    m.samples >= 3 * 8000 * 0.7 && m.rms > 50 && (!tone || Math.abs(m.hz - 1000) < 100), JSON.stringify(m));
}

const browser = await launchBrowser();
const procs = [];
try {
  // 1. RTMP-fed stream (H.264 + AAC, no transcoding).
  const ff = run('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-re',
    '-f', 'lavfi', '-i', 'testsrc2=size=640x360:rate=25', '-f', 'lavfi', '-i', 'sine=frequency=1000:sample_rate=44100',
    '-c:v', 'libx264', '-preset', 'ultrafast', '-tune', 'zerolatency', '-bf', '0', '-g', '25',
    '-pix_fmt', 'yuv420p', '-c:a', 'aac', '-t', '60', '-f', 'flv', `rtmp://127.0.0.1:${rtmpPort}/live/hr`], 90000);
  procs.push(ff.proc);
  await checkHls('RTMP -> HLS', 'hr', { minFps: 25, tone: true });
  const pres = await fetch(`${base}/live/hr.m3u8`);
  const ptext = await pres.text();
  const seg = ptext.split('\n').find(l => l && !l.startsWith('#'));
  const sres = seg ? await fetch(new URL(seg, `${base}/live/hr.m3u8`)) : null;
  r.check('playlist: application/vnd.apple.mpegurl, not cached, CORS',
    /mpegurl/i.test(pres.headers.get('content-type') || '') && /no-cache/.test(pres.headers.get('cache-control') || '') &&
    pres.headers.get('access-control-allow-origin') === '*', JSON.stringify([...pres.headers]));
  r.check(`segment ${seg}: video/mp2t, cacheable`, sres?.ok && /mp2t/.test(sres.headers.get('content-type') || '') &&
    /max-age/.test(sres.headers.get('cache-control') || ''), JSON.stringify(sres ? [...sres.headers] : null));
  const missing = await fetch(`${base}/live/nosuch.m3u8`);
  const escape = await fetch(`${base}/live/hr/..%2F..%2Festuary.yaml`);
  r.check('unknown stream: 404; a path out of the folder: not served', missing.status === 404 && escape.status === 404,
    `${missing.status} ${escape.status}`);

  // 2. Chromium publishes H.264 over WHIP.
  const pub = await browser.context.newPage();
  await pub.goto(`${base}/publish.html?app=live&stream=hw&codec=H264`);
  await pub.waitForFunction(() => typeof window.estuaryPublish === 'function');
  await pub.evaluate(() => window.estuaryPublish());
  await checkHls('Chromium WHIP -> HLS', 'hw', { minFps: 20 });

  // 3. aiortc publishes H.264 (it ignores PLI and sends a key frame every 250 frames, so its
  //    segments are long and the playlist takes a while).
  const aio = run('/usr/bin/python3', [aiortc, 'publish', `${base}/whip/live/ha`, '60', 'H264'], 90000);
  procs.push(aio.proc);
  await checkHls('aiortc WHIP -> HLS', 'ha', { minFps: 10, timeoutMs: 45000, segments: 1 });

  // 4. The publishers leave: ENDLIST, then the folder goes (hls.cleanup_ms: 4000 here).
  await pub.evaluate(() => window.estuaryStop());
  ff.proc.kill('SIGTERM');
  aio.proc.kill('SIGTERM');
  let ended = null;
  for (let i = 0; i < 20 && !ended; i++) {
    await sleep(250);
    const t = await fetch(`${base}/live/hr.m3u8`).then(x => x.ok ? x.text() : null).catch(() => null);
    if (t && t.includes('#EXT-X-ENDLIST')) ended = t;
  }
  r.check('after the RTMP publisher left, the playlist ends with #EXT-X-ENDLIST', !!ended);

  // 5. The RTMP publisher returns before hls.cleanup_ms: the playlist continues after an
  //    #EXT-X-DISCONTINUITY and decodes again; then it leaves for good.
  const ff2 = run('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-re',
    '-f', 'lavfi', '-i', 'testsrc2=size=640x360:rate=25', '-f', 'lavfi', '-i', 'sine=frequency=1000:sample_rate=44100',
    '-c:v', 'libx264', '-preset', 'ultrafast', '-tune', 'zerolatency', '-bf', '0', '-g', '25',
    '-pix_fmt', 'yuv420p', '-c:a', 'aac', '-t', '30', '-f', 'flv', `rtmp://127.0.0.1:${rtmpPort}/live/hr`], 60000);
  procs.push(ff2.proc);
  let cont = null;
  for (let i = 0; i < 40 && !cont; i++) {
    await sleep(250);
    const t = await fetch(`${base}/live/hr.m3u8`).then(x => x.ok ? x.text() : null).catch(() => null);
    if (t && t.includes('#EXT-X-DISCONTINUITY') && !t.includes('#EXT-X-ENDLIST') &&
        t.split('#EXT-X-DISCONTINUITY')[1].includes('#EXTINF')) cont = t;
  }
  r.check('a publisher back within hls.cleanup_ms continues the playlist after #EXT-X-DISCONTINUITY', !!cont);
  ff2.proc.kill('SIGTERM');
  let gone = false;
  for (let i = 0; i < 60 && !gone; i++) {
    await sleep(250);
    gone = ['hr', 'hw', 'ha'].every(s => !existsSync(join(hlsRoot, 'live', s)));
  }
  r.check('the HLS folders are removed after hls.cleanup_ms', gone,
    existsSync(join(hlsRoot, 'live')) ? readdirSync(join(hlsRoot, 'live')).join(',') : '');
} catch (e) {
  r.check('test ran to the end', false, e.stack);
} finally {
  for (const p of procs) { try { p.kill('SIGKILL'); } catch { /* gone */ } }
  await browser.close();
  rmSync(work, { recursive: true, force: true });
}
process.exit(r.done());
