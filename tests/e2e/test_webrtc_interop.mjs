// WebRTC interop through Estuary between Chromium and clients other than Chromium, asserting on
// decoded media each time (frames presented at the publisher's size, a picture that is not black
// and moves, audio samples with energy):
//   1. Firefox publishes (WHIP, VP8 + Opus, fake camera and microphone), Chromium plays (WHEP);
//   2. Chromium publishes (WHIP, H.264 + Opus), Firefox plays, then GStreamer's webrtcbin plays;
//   3. GStreamer publishes (WHIP, VP8 + Opus from videotestsrc/audiotestsrc), Chromium plays;
//   4. Chromium publishes audio only, Chromium plays it: audio arrives;
//   5. Chromium publishes video only, Chromium plays it: video arrives.
// Firefox and webrtcbin put every m-section after the first at port 0 with a=bundle-only
// (max-bundle); each failure prints the offer and the answer, summarised per m-section, and
// what the client said. Every wait is bounded. ES_INTEROP_STRIP_BUNDLE_ONLY=1 (diagnosis only)
// posts every client's offer without a=bundle-only (port 9 instead of 0), to see what else works
// while a server mishandles bundle-only. Usage: node test_webrtc_interop.mjs BASE_URL
import { launchBrowser, reporter } from './lib/browser.mjs';
import { launchFirefox } from './lib/firefox.mjs';
import { playAndTimeFirstFrame, observeMedia } from './lib/media.mjs';
import { run } from './lib/proc.mjs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const [base] = process.argv.slice(2);
const gstClient = join(dirname(fileURLToPath(import.meta.url)), 'gst_client.py');
const r = reporter();
const t0 = Date.now();
const sleep = (ms) => new Promise(res => setTimeout(res, ms));
const stripBundleOnly = process.env.ES_INTEROP_STRIP_BUNDLE_ONLY === '1';
const note = (msg) => console.log(`# ${((Date.now() - t0) / 1000).toFixed(1)} s: ${msg}`);

function within(ms, promise, what) {
  let timer;
  const late = new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms); });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

async function streamInfo(stream) {
  const res = await fetch(`${base}/api/v1/streams/live/${stream}`).catch(() => null);
  return res?.ok ? res.json() : null;
}

// Waits until the stream has `tracks` tracks and media flows (or timeoutMs, or until gaveUp()
// says the publisher is gone); the last info seen.
async function waitForStream(stream, tracks, timeoutMs = 8000, gaveUp = () => false) {
  let info = null;
  for (const end = Date.now() + timeoutMs; Date.now() < end && !gaveUp(); await sleep(200)) {
    info = await streamInfo(stream);
    if (info && info.packets_in > 50 && info.tracks?.length >= tracks) break;
  }
  return info;
}

const trackList = (info) => info ? JSON.stringify(info.tracks?.map(t => `${t.kind}:${t.codec}:${t.packets}pkts`)) : 'no such stream';

// One line per SDP: the BUNDLE group, then per m-section its kind, port, direction, bundle-only,
// rtcp-mux and codecs, and "(no fingerprint)" when neither it nor the session has one, e.g.
// "group:BUNDLE 0 1 | audio port 9 sendonly rtcp-mux opus | video port 0 bundle-only sendonly rtcp-mux VP8".
function sdpSummary(sdp) {
  if (!sdp) return '(none)';
  const parts = [];
  let cur = null, sessionFingerprint = false;
  for (const l of sdp.split(/\r?\n/)) {
    if (l.startsWith('a=group:BUNDLE')) parts.push(l.slice(2));
    else if (!cur && l.startsWith('a=fingerprint')) sessionFingerprint = true;
    else if (l.startsWith('m=')) {
      const [kind, port] = l.slice(2).split(' ');
      cur = { kind, port, attrs: [], codecs: [] };
      parts.push(cur);
    } else if (cur && /^a=(sendonly|recvonly|sendrecv|inactive|bundle-only|rtcp-mux)$/.test(l)) cur.attrs.push(l.slice(2));
    else if (cur && l.startsWith('a=fingerprint')) cur.fingerprint = true;
    else if (cur && l.startsWith('a=rtpmap:')) {
      const c = l.split(' ')[1]?.split('/')[0];
      if (c && !/^(rtx|red|ulpfec|flexfec-03|telephone-event|CN)$/i.test(c) && !cur.codecs.includes(c)) cur.codecs.push(c);
    }
  }
  return parts.map(p => typeof p === 'string' ? p
    : [p.kind, 'port', p.port, ...p.attrs, p.codecs.join(',') || '(no codec)', p.fingerprint || sessionFingerprint ? '' : '(no fingerprint)'].filter(Boolean).join(' '))
    .join(' | ');
}

// Keeps the last WHIP/WHEP exchange of the page (estuary.js calls the global fetch) for the
// failure messages and the clean-up: window.estuaryExchange = { status, offer, answer, resource }.
// With ES_INTEROP_STRIP_BUNDLE_ONLY=1 (diagnosis only) the offer is posted without a=bundle-only
// and with port 9 instead of 0.
async function recordSignalling(page) {
  await page.evaluate((strip) => {
    const orig = window.fetch;
    window.estuaryExchange = null;
    window.fetch = async (url, init) => {
      if (init?.method !== 'POST') return orig(url, init);
      if (strip && typeof init.body === 'string') {
        init = { ...init, body: init.body.split('\r\n').filter(l => l !== 'a=bundle-only')
          .map(l => l.startsWith('m=') ? l.replace(/^(m=\S+) 0 /, '$1 9 ') : l).join('\r\n') };
      }
      const res = await orig(url, init);
      const location = res.headers.get('Location');
      window.estuaryExchange = { status: res.status, offer: init.body, answer: await res.clone().text(),
                                 resource: location ? new URL(location, url).href : null };
      return res;
    };
  }, stripBundleOnly);
}

// What a page's last exchange and its peer connection show, for failure messages.
async function diagnose(page) {
  const d = await page.evaluate(() => {
    const pc = window.estuarySession?.pc;
    const x = window.estuaryExchange || {};
    return {
      status: x.status, offer: x.offer, answer: x.answer,
      pc: pc ? `${pc.connectionState}/${pc.iceConnectionState}` : 'no session',
      tracks: pc ? pc.getTransceivers().map(t => `${t.mid}:${t.receiver.track?.kind}:${t.currentDirection}`) : [],
    };
  }).catch(e => ({ error: e.message }));
  if (d.error) return `(page unreadable: ${d.error})`;
  return `[HTTP ${d.status}; offer: ${sdpSummary(d.offer)}; answer: ${sdpSummary(d.answer)}; pc ${d.pc}; transceivers ${d.tracks.join(' ')}]`;
}

function watchConsole(page, who) {
  page.on('console', m => {
    const url = m.location()?.url || '';
    // Not shown: the favicon, and the DELETE of a session the server already closed on the
    // peer's DTLS close_notify (estuary.js closes the peer connection first).
    if (m.type() === 'error' && !/\/favicon\.ico$|\/wh[ie]p\/.*\/[0-9a-f]{16}-[0-9a-f]{32}$/.test(url)) console.log(`#   ${who} console: ${m.text()} ${url}`);
  });
}

// Opens the publish page in `page` and publishes the fake camera and/or microphone.
// Resolves to { resource } or { error } (the page's exception text).
async function publishFrom(page, stream, { codec = '', audio = true, video = true } = {}) {
  await page.goto(`${base}/publish.html?app=live&stream=${stream}${codec ? `&codec=${codec}` : ''}`);
  await page.waitForFunction(() => typeof window.estuaryPublish === 'function');
  await recordSignalling(page);
  return within(15000, page.evaluate(async ({ audio, video }) => {
    if (!video) document.getElementById('camera').value = '';
    if (!audio) document.getElementById('mic').value = '';
    try { return { resource: await window.estuaryPublish() }; } catch (e) { return { error: String(e) }; }
  }, { audio, video }), 'WHIP publish');
}

const videoSettings = (page) => page.evaluate(() =>
  window.estuarySession?.pc.getSenders().find(s => s.track?.kind === 'video')?.track.getSettings() ?? null);

// Audio received by the page's session over durationMs (for pages without video).
async function observeAudio(page, durationMs = 2500) {
  const counters = () => page.evaluate(async () => {
    let samples = 0, energy = 0;
    const pc = window.estuarySession?.pc;
    if (pc) (await pc.getStats()).forEach(s => {
      if (s.type === 'inbound-rtp' && s.kind === 'audio') { samples = s.totalSamplesReceived || 0; energy = s.totalAudioEnergy || 0; }
    });
    return { samples, energy };
  });
  const a = await counters();
  await sleep(durationMs);
  const b = await counters();
  return { audioSamples: b.samples - a.samples, audioEnergy: b.energy - a.energy };
}

// Mean red, green and blue of the picture the page's <video> shows (0-255 each).
const pictureColour = (page) => page.evaluate(() => {
  const v = document.getElementById('video');
  const c = document.createElement('canvas');
  c.width = 64; c.height = 48;
  const g = c.getContext('2d', { willReadFrequently: true });
  g.drawImage(v, 0, 0, c.width, c.height);
  const d = g.getImageData(0, 0, c.width, c.height).data;
  const sum = [0, 0, 0];
  for (let i = 0; i < d.length; i += 4) for (let k = 0; k < 3; k++) sum[k] += d[i + k];
  return sum.map(x => Math.round(x / (d.length / 4)));
});

// Plays `stream` in `page` (a Chromium or Firefox page) and checks the decoded media.
// expect: { video, audio, size: {width, height} | null, detail: bool }: with detail, the picture
// must have a spread of brightness and change between two samples (observeMedia); without (a
// solid-colour source), its mean colour must not be black and must change.
async function checkPlayer(label, page, stream, expect) {
  await page.goto(`${base}/play.html?app=live&stream=${stream}`);
  await page.waitForFunction(() => typeof window.estuaryPlay === 'function');
  await recordSignalling(page);
  let err = null;
  try {
    if (expect.video) {
      const ms = await within(15000, playAndTimeFirstFrame(page, 10000), 'WHEP play');
      note(`${label}: first decoded frame ${ms.toFixed(0)} ms after the WHEP POST`);
    } else {
      await within(10000, page.evaluate(() => window.estuaryPlay()), 'WHEP play');
      // Let ICE and DTLS finish (up to 5 s) before the audio counters are read.
      for (let i = 0; i < 50 && !(await page.evaluate(() => window.estuarySession?.pc.connectionState === 'connected')); i++) await sleep(100);
    }
  } catch (e) {
    err = e.message;
  }
  const diag = await diagnose(page);
  r.check(`${label}: WHEP play ${expect.video ? 'decodes a first frame' : 'starts'}`, !err, `${err} ${diag}`);
  const session = await page.evaluate(() => !!window.estuarySession);
  if (err && expect.video) {
    r.check(`${label}: the player gets video`, false, 'no decoded frame (above)');
    if (!expect.audio) return null;
    if (!session) {
      r.check(`${label}: the player gets audio`, false, 'no session (above)');
      return null;
    }
    // Answered and connected, but no picture: the audio may still come.
    const m = await observeAudio(page);
    r.check(`${label}: the player gets audio samples with energy`, m.audioSamples > 48000 && m.audioEnergy > 0, `${JSON.stringify(m)} ${diag}`);
    return m;
  }
  await page.bringToFront(); // background tabs render at a throttled rate
  const colourBefore = expect.video && !expect.detail ? await pictureColour(page) : null;
  const m = expect.video ? await observeMedia(page) : await observeAudio(page);
  if (colourBefore) m.colours = [colourBefore, await pictureColour(page)];
  const shown = `${JSON.stringify(m)} ${diag}`;
  if (expect.video) {
    r.check(`${label}: the player decodes frames (${m.frames} in 2.5 s)`, m.frames >= 15, shown);
    if (expect.size) {
      r.check(`${label}: frame size ${m.width}x${m.height} is the publisher's ${expect.size.width}x${expect.size.height}`,
        m.width === expect.size.width && m.height === expect.size.height, shown);
    }
    if (expect.detail) r.check(`${label}: the picture has detail and moves`, m.spread > 40 && m.changedSamples > 0, shown);
    else {
      const [a, b] = m.colours;
      r.check(`${label}: the picture is not black and its colour changes (${a} -> ${b})`,
        Math.max(...b) > 40 && a.reduce((s, x, k) => s + Math.abs(x - b[k]), 0) > 6, shown);
    }
  }
  if (expect.audio) r.check(`${label}: the player gets audio samples with energy`, m.audioSamples > 48000 && m.audioEnergy > 0, shown);
  return m;
}

// Stops the page's session (estuary.js: close, then DELETE); a session the page never got
// (its answer was refused) is DELETEd from here, so that the server forgets it.
async function stopPage(page) {
  if (!page) return;
  const orphan = await within(5000, page.evaluate(async () => {
    const orphan = window.estuarySession ? null : window.estuaryExchange?.resource;
    await window.estuaryStop?.();
    return orphan;
  }), 'stop').catch(() => null);
  if (orphan) await fetch(orphan, { method: 'DELETE' }).catch(() => {});
  await page.close().catch(() => {});
}

async function scenario(name, fn) {
  note(`${name}`);
  try {
    await fn();
  } catch (e) {
    r.check(`${name}: ran to the end`, false, e.stack);
  }
}

function runGst(args, timeoutMs) {
  const c = run('/usr/bin/python3', [gstClient, ...args, ...(stripBundleOnly ? ['--strip-bundle-only'] : [])], timeoutMs);
  c.result = c.done.then(res => {
    let json = null;
    try { json = JSON.parse(res.out.trim().split('\n').pop()); } catch { /* no JSON line */ }
    return { ...res, json };
  });
  return c;
}

const gstSummary = (j, err) => j
  ? `[connection ${j.connection}, ice ${j.ice}, HTTP ${j.http}, error ${j.error}; offer: ${j.offer?.join(' ')}; answer: ${sdpSummary(j.answer_sdp) !== '(none)' ? sdpSummary(j.answer_sdp) : j.answer?.join(' ')}; packets ${JSON.stringify(j.packets)}]`
  : `[no result: ${err.trim().split('\n').slice(-5).join(' / ')}]`;

const chromium = await launchBrowser();
let firefox = null;
try {
  firefox = await launchFirefox();
  note(`Firefox ${await firefox.browser.version()} started`);
} catch (e) {
  r.check('Firefox ESR starts under puppeteer-core (WebDriver BiDi)', false, e.stack);
}
const chromiumPage = async (who) => { const p = await chromium.context.newPage(); watchConsole(p, who); return p; };
const firefoxPage = async (who) => { const p = await firefox.newPage(); watchConsole(p, who); return p; };

try {
  // 1. Firefox publishes VP8 + Opus, Chromium plays.
  if (firefox) await scenario('Firefox -> Chromium', async () => {
    const stream = 'ff-pub';
    const pub = await firefoxPage('Firefox publisher');
    const player = await chromiumPage('Chromium player');
    try {
      const res = await publishFrom(pub, stream, { codec: 'VP8' });
      r.check('Firefox -> Chromium: WHIP answered with a session resource', !!res.resource, `${res.error} ${await diagnose(pub)}`);
      const info = await waitForStream(stream, 2);
      r.check('Firefox -> Chromium: the stream has Firefox\'s VP8 video and Opus audio',
        info?.tracks?.some(t => t.kind === 'video' && t.codec === 'VP8') && info.tracks.some(t => t.codec === 'opus'),
        `tracks ${trackList(info)} ${await diagnose(pub)}`);
      const size = await videoSettings(pub);
      // Firefox's fake camera is one solid colour cycling through hues: no detail to look for.
      await checkPlayer('Firefox -> Chromium', player, stream, { video: true, audio: true, size, detail: false });
    } finally {
      await stopPage(player);
      await stopPage(pub);
    }
  });

  // 2. Chromium publishes H.264 + Opus, Firefox plays, then GStreamer plays.
  await scenario('Chromium -> Firefox, GStreamer', async () => {
    const stream = 'chr-pub';
    const pub = await chromiumPage('Chromium publisher');
    try {
      const res = await publishFrom(pub, stream, { codec: 'H264' });
      r.check('Chromium -> Firefox: WHIP answered with a session resource', !!res.resource, `${res.error} ${await diagnose(pub)}`);
      const info = await waitForStream(stream, 2);
      r.check('Chromium -> Firefox: the stream has H.264 video and Opus audio',
        info?.tracks?.some(t => t.codec === 'H264') && info.tracks.some(t => t.codec === 'opus'), `tracks ${trackList(info)}`);
      const size = await videoSettings(pub);
      if (firefox) {
        const player = await firefoxPage('Firefox player');
        try {
          await checkPlayer('Chromium -> Firefox', player, stream, { video: true, audio: true, size, detail: true });
        } finally {
          await stopPage(player);
        }
      }
      const gst = await runGst(['play', `${base}/whep/live/${stream}`, '6'], 30000).result;
      const j = gst.json;
      note(`Chromium -> GStreamer: ${j ? JSON.stringify({ ...j, answer_sdp: undefined, offer_candidates: undefined }) : gst.err.slice(-300)}`);
      const why = gstSummary(j, gst.err);
      r.check('Chromium -> GStreamer: webrtcbin connects over WHEP', j?.connected === true, why);
      r.check(`Chromium -> GStreamer: webrtcbin decodes video (${j?.video_frames} frames, ${j?.width}x${j?.height}) with detail that moves`,
        j?.video_frames >= 30 && j.width === size?.width && j.height === size?.height && j.spread > 40 && j.motion > 1, why);
      r.check(`Chromium -> GStreamer: webrtcbin decodes audio (${j?.audio_samples} samples at 8 kHz)`,
        j?.audio_samples > 8000 && j.audio_rms > 0, why);
    } finally {
      await stopPage(pub);
    }
  });

  // 3. GStreamer publishes VP8 + Opus, Chromium plays.
  await scenario('GStreamer -> Chromium', async () => {
    const stream = 'gst-pub';
    const gst = runGst(['publish', `${base}/whip/live/${stream}`, '25', '--codec', 'VP8'], 40000);
    let exited = null;
    gst.result.then(res => { exited = res; });
    const info = await waitForStream(stream, 2, 10000, () => exited);
    const early = exited;
    r.check('GStreamer -> Chromium: the stream has webrtcbin\'s VP8 video and Opus audio',
      info?.tracks?.some(t => t.codec === 'VP8') && info.tracks.some(t => t.codec === 'opus'),
      `tracks ${trackList(info)}${early ? ` webrtcbin exited ${early.code}: ${gstSummary(early.json, early.err)}` : ''}`);
    const player = await chromiumPage('Chromium player');
    try {
      await checkPlayer('GStreamer -> Chromium', player, stream, { video: true, audio: true, size: { width: 640, height: 480 }, detail: true });
    } finally {
      await stopPage(player);
      gst.proc.kill('SIGTERM');
      const res = await gst.result;
      r.check('GStreamer -> Chromium: webrtcbin connected and sent media', res.json?.connected === true && res.json.packets?.sent > 0,
        gstSummary(res.json, res.err));
    }
  });

  // 4. and 5. Chromium publishes audio only, then video only; Chromium plays each.
  for (const [kind, audio, video] of [['audio-only', true, false], ['video-only', false, true]]) {
    await scenario(`Chromium ${kind} -> Chromium`, async () => {
      const stream = `chr-${kind}`;
      const label = `Chromium ${kind} -> Chromium`;
      const pub = await chromiumPage(`${kind} publisher`);
      const player = await chromiumPage(`${kind} player`);
      try {
        const res = await publishFrom(pub, stream, { codec: 'VP8', audio, video });
        r.check(`${label}: WHIP answered with a session resource`, !!res.resource, `${res.error} ${await diagnose(pub)}`);
        const info = await waitForStream(stream, 1);
        r.check(`${label}: the stream has one ${audio ? 'Opus' : 'VP8'} track`,
          info?.tracks?.length === 1 && info.tracks[0].codec === (audio ? 'opus' : 'VP8'), `tracks ${trackList(info)}`);
        const size = video ? await videoSettings(pub) : null;
        await checkPlayer(label, player, stream, { video, audio, size, detail: true });
      } finally {
        await stopPage(player);
        await stopPage(pub);
      }
    });
  }

  // Every client said DELETE (or its session ended): nothing is left.
  let left = [];
  for (let i = 0; i < 30; i++) {
    left = (await (await fetch(`${base}/api/v1/sessions`)).json()).sessions;
    if (!left.length) break;
    await sleep(100);
  }
  r.check('no sessions left after every client stopped', left.length === 0, JSON.stringify(left));
} catch (e) {
  r.check('interop scenario ran to the end', false, e.stack);
} finally {
  await firefox?.close();
  await chromium.close();
}
note('done');
process.exit(r.done());
