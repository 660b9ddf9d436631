// RTMP end to end with clients nobody here wrote: Debian's ffmpeg publishes a moving test
// pattern with a 1 kHz tone over RTMP; ffmpeg decodes it back from RTMP play and from HTTP-FLV;
// headless Chromium plays it over WHEP (H.264 + AAC transcoded to Opus). Also: a second
// publisher on the same name is refused, tokens apply to RTMP stream keys, and garbage or
// truncated RTMP connections are closed without disturbing the live stream.
// Usage: node test_rtmp.mjs BASE_URL UDP_PORT RTMP_PORT
import { launchBrowser, reporter } from './lib/browser.mjs';
import { playAndTimeFirstFrame, observeMedia } from './lib/media.mjs';
import { run, decodeMedia } from './lib/proc.mjs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';
import { randomBytes } from 'node:crypto';

const [base, , rtmpPort] = process.argv.slice(2);
const rtmp = `rtmp://127.0.0.1:${rtmpPort}`;
const r = reporter();
const sleep = (ms) => new Promise(res => setTimeout(res, ms));
const work = mkdtempSync(join(tmpdir(), 'estuary-rtmp-'));

// ffmpeg publishing a 640x360 25 fps pattern (x264, no B-frames, a 3 s GOP: players must start
// from the GOP cache, as an RTMP encoder cannot be asked for a key frame) and a 1 kHz sine (AAC)
// for `seconds`, to `url`.
function publish(url, seconds) {
  return run('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-re',
    '-f', 'lavfi', '-i', `testsrc2=size=640x360:rate=25`,
    '-f', 'lavfi', '-i', 'sine=frequency=1000:sample_rate=44100',
    '-c:v', 'libx264', '-preset', 'ultrafast', '-tune', 'zerolatency', '-bf', '0', '-g', '75',
    '-pix_fmt', 'yuv420p', '-c:a', 'aac', '-b:a', '96k', '-t', String(seconds), '-f', 'flv', url],
  (seconds + 30) * 1000);
}

const decode = (url, seconds, tag) => decodeMedia(url, seconds, join(work, tag));

function mediaOk(name, m, seconds) {
  r.check(`${name}: decodes video frames (${m.frames} in ${seconds} s at 25 fps)`, m.frames >= seconds * 25 * 0.8, JSON.stringify(m));
  r.check(`${name}: the picture has detail and moves`, m.spread > 40 && m.motion > 1, JSON.stringify(m));
  r.check(`${name}: decodes the 1 kHz tone (${m.samples} samples, RMS ${m.rms.toFixed(0)}, ${m.hz.toFixed(0)} Hz)`,
    m.samples >= seconds * 8000 * 0.8 && m.rms > 500 && Math.abs(m.hz - 1000) < 100, JSON.stringify(m));
}

async function streamInfo(path) {
  return fetch(base + '/api/v1/streams/' + path).then(x => x.ok ? x.json() : null).catch(() => null);
}

async function waitForRtmpStream(path, timeoutMs = 15000) {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    const s = await streamInfo(path);
    if (s && s.source === 'rtmp' && s.flv && s.flv.tags_in > 50) return s;
    await sleep(200);
  }
  return null;
}

// Opens a TCP connection to the RTMP port, sends `chunks` (with pauses), and resolves with
// whether the server closed it within closeMs.
function rawConnection(chunks, closeMs, { handshake = false } = {}) {
  return new Promise(resolve => {
    const s = net.connect(Number(rtmpPort), '127.0.0.1');
    let got = Buffer.alloc(0), closed = false;
    const timer = setTimeout(() => { s.destroy(); resolve({ closed: false, got: got.length }); }, closeMs);
    s.on('data', d => {
      got = Buffer.concat([got, d]);
      if (handshake && got.length >= 1 + 1536 * 2 && !s.c2sent) {
        s.c2sent = true;
        s.write(got.subarray(1, 1537)); // C2 = S1
        for (const c of chunks.slice(1)) s.write(c);
      }
    });
    s.on('error', () => {});
    s.on('close', () => { if (!closed) { closed = true; clearTimeout(timer); resolve({ closed: true, got: got.length }); } });
    s.on('connect', () => { if (handshake) s.write(chunks[0]); else for (const c of chunks) s.write(c); });
  });
}

const browser = await launchBrowser();
let pub;
try {
  // 1. FFmpeg publishes.
  pub = publish(`${rtmp}/live/test`, 90);
  const info = await waitForRtmpStream('live/test');
  r.check('ffmpeg publishes over RTMP (the API shows an RTMP source with tags flowing)', !!info,
    (await Promise.race([pub.done, sleep(10)]))?.err);
  if (!info) throw new Error('no stream; giving up');
  const codecs = JSON.stringify(info.flv.codecs || info.flv);
  r.check(`the API shows the RTMP source's codecs H.264 + AAC and its bitrate (${codecs}, ${info.flv.bitrate_bps} bit/s)`,
    /H264/.test(codecs) && /AAC/.test(codecs) && info.flv.bitrate_bps > 50000, JSON.stringify(info));

  // 2. RTMP play and HTTP-FLV, decoded.
  const mr = await decode(`${rtmp}/live/test`, 4, 'rtmp');
  mediaOk('RTMP play (ffmpeg)', mr, 4);
  // librtmp (rtmpdump) sends the FP9 digest handshake and rejects a server whose S1/S2 digests
  // do not verify: the handshake OBS's RTMP output uses.
  const dump = join(work, 'rtmpdump.flv');
  const rd = await run('timeout', ['-s', 'INT', '4', 'rtmpdump', '-r', `${rtmp}/live/test`, '--live', '-o', dump], 30000).done;
  const md = await decode(dump, 2, 'rtmpdump');
  r.check('rtmpdump (librtmp) completes its FP9 handshake and starts playing', /Starting Live Stream/.test(rd.err) &&
    !/not genuine|Couldn't verify|handshake failed/i.test(rd.err), rd.err.slice(-400));
  mediaOk("RTMP play with librtmp (rtmpdump)", md, 2);
  const mf = await decode(`${base}/live/test.flv`, 4, 'flv');
  mediaOk('HTTP-FLV (ffmpeg)', mf, 4);
  const probe = await run('ffprobe', ['-v', 'error', '-rw_timeout', '10000000', '-show_entries',
    'stream=codec_name,width,height,sample_rate', '-of', 'json', `${base}/live/test.flv`], 20000).done;
  let streams = [];
  try { streams = JSON.parse(probe.out).streams || []; } catch { /* checked below */ }
  r.check('ffprobe of HTTP-FLV: h264 640x360 and aac 44100 Hz',
    streams.some(s => s.codec_name === 'h264' && s.width === 640 && s.height === 360) &&
    streams.some(s => s.codec_name === 'aac' && s.sample_rate === '44100'), probe.out + probe.err);

  // 3. Chromium plays it over WHEP: H.264 video and AAC transcoded to Opus.
  const page = await browser.context.newPage();
  await page.goto(`${base}/play.html?app=live&stream=test`);
  await page.waitForFunction(() => typeof window.estuaryPlay === 'function');
  try {
    const ms = await playAndTimeFirstFrame(page, 15000);
    console.log(`# RTMP -> WHEP: first decoded frame ${ms.toFixed(0)} ms after the WHEP POST`);
    r.check(`Chromium (WHEP) decodes its first frame within 1 s (${ms.toFixed(0)} ms)`, ms < 1000);
    await sleep(500);
    const m = await observeMedia(page, 3000);
    r.check(`Chromium decodes the RTMP stream's video over WHEP (${m.frames} frames in 3 s)`, m.frames >= 45, JSON.stringify(m));
    r.check('Chromium sees the 640x360 picture with detail that moves', m.width === 640 && m.height === 360 && m.spread > 40 && m.changedSamples > 0, JSON.stringify(m));
    r.check(`Chromium decodes Opus audio with a non-zero level (${m.audioSamples} samples)`, m.audioSamples > 96000 && m.audioEnergy > 0, JSON.stringify(m));
  } catch (e) {
    r.check('Chromium decodes the RTMP stream over WHEP', false, e.message);
  }
  const withPlayer = await streamInfo('live/test');
  r.check('the API shows the RTMP -> WebRTC bridge transcoding for the player',
    withPlayer?.rtmp_to_rtc?.transcoding === true && withPlayer?.rtmp_to_rtc?.opus_frames > 50, JSON.stringify(withPlayer?.rtmp_to_rtc));

  // 4. A second publisher on the same name is refused; the first keeps going.
  const second = await publish(`${rtmp}/live/test`, 5).done;
  r.check('a second RTMP publisher on live/test is refused with NetStream.Publish.BadName and the reason',
    second.code !== 0 && /already being published/.test(second.err), `exit ${second.code}: ${second.err.slice(0, 300)}`);

  // 5. Tokens: app "secret" needs ?token=s3cret to publish.
  const noTok = await publish(`${rtmp}/secret/cam`, 3).done;
  r.check('publishing to an app with a token, without it, is refused with the reason',
    noTok.code !== 0 && /token/.test(noTok.err), `exit ${noTok.code}: ${noTok.err.slice(0, 300)}`);
  const withTok = publish(`${rtmp}/secret/cam?token=s3cret`, 20);
  const sec = await waitForRtmpStream('secret/cam', 10000);
  r.check('publishing with ?token=s3cret is accepted', !!sec);
  withTok.proc.kill('SIGTERM');
  await withTok.done;

  // 6. Garbage and truncated connections are closed; the live stream is not disturbed.
  const before = await streamInfo('live/test');
  const g1 = await rawConnection([randomBytes(3000)], 5000);
  r.check('random bytes on the RTMP port: connection closed', g1.closed, JSON.stringify(g1));
  const c1 = Buffer.concat([Buffer.from([3]), randomBytes(700)]);
  const g2 = await rawConnection([c1], 6000);
  r.check('a handshake cut short: closed after rtmp.handshake_timeout_ms', g2.closed, JSON.stringify(g2));
  // A full handshake, then a chunk of an unknown chunk stream without a full header (fmt 3).
  const hs = Buffer.concat([Buffer.from([3]), Buffer.alloc(1536)]);
  const g3 = await rawConnection([hs, Buffer.from([0xc5]), randomBytes(500)], 5000, { handshake: true });
  r.check('garbage chunks after a valid handshake: connection closed', g3.closed && g3.got >= 3073, JSON.stringify(g3));
  await sleep(1000);
  const after = await streamInfo('live/test');
  r.check('the live stream kept flowing meanwhile', after && before && after.source === 'rtmp' &&
    after.flv.tags_in > before.flv.tags_in + 50, JSON.stringify([before?.flv?.tags_in, after?.flv?.tags_in]));
  const m2 = await observeMedia(page, 2000);
  r.check(`the WHEP player still decodes after the garbage (${m2.frames} frames in 2 s)`, m2.frames >= 30, JSON.stringify(m2));
  const mr2 = await decode(`${rtmp}/live/test`, 2, 'rtmp2');
  r.check(`RTMP play still decodes after the garbage (${mr2.frames} frames)`, mr2.frames >= 40, JSON.stringify(mr2));
  await page.evaluate(() => window.estuaryStop());
  await page.close();

  // 7. The publisher leaves: the stream goes away.
  pub.proc.kill('SIGTERM');
  await pub.done;
  let gone = false;
  for (let i = 0; i < 30 && !gone; i++) { await sleep(200); gone = (await streamInfo('live/test')) === null; }
  r.check('after the publisher leaves and no one plays, the stream is removed', gone);
} catch (e) {
  r.check('test ran to the end', false, e.stack);
} finally {
  if (pub) pub.proc.kill('SIGKILL');
  await browser.close();
  rmSync(work, { recursive: true, force: true });
}
process.exit(r.done());
