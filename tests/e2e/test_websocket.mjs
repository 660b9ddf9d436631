// The browser SDK (web/estuary.js) and its pages over WebSocket signaling (docs/websocket.md),
// in headless Chromium, asserting on decoded media:
// - docs/sdk.md's ten-line pages are web/example-*.html, and they publish and play;
// - WebSocket publish -> WebSocket play and WHEP play, WHIP publish -> WebSocket play: frames at
//   the camera's size that move, audio with energy (publish.html and play.html, ?transport=ws),
//   and the SDK's stats;
// - mute()/unmute() take the player's audio to silence and back; muteVideo()/unmuteVideo() the
//   picture to black and back; shareScreen() switches the player's picture to the screen and
//   back in the same session. The screen is a real getDisplayMedia(): with
//   --use-fake-ui-for-media-stream and the fake devices of lib/browser.mjs, headless Chromium
//   shares a fake 1280x720 "monitor" without asking (shareScreen({stream}) is not needed here);
// - a Player re-establishes itself when its publisher stops and a new one starts, also when the
//   new one sends another codec (H.264 instead of VP8);
// - Publisher.stop() and Player.stop() (their sockets closed) end the sessions: the API stops
//   listing them within 1 s;
// - a player kicked through the API (event "closed") comes back with a new session;
// - publish.html's "clock" effect (canvasCallback) is read back by play.html as a latency;
// - malformed JSON, an unknown type, a 100 KiB message and a flood of 200 messages from plain
//   sockets (Node's WebSocket) are each closed with 1008/1009 and a reason, while a player on
//   another socket keeps decoding;
// - a canvasCallback's red 64x64 square reaches the player's decoded frames (pixel check);
// - an audio-only Publisher ({video: false}) has one sender and its player gets audio;
// - a player without its app's token stops at 401; one of a stream nobody publishes yet retries
//   (404) and plays it once it is published;
// - three room.html pages in one room each decode the other two (room events), docs/sdk.md's
//   FFmpeg command mixes two of them into live/room-mix, and a leaving one is dropped;
// - two call.html pages on one link each decode the other.
// Usage: node test_websocket.mjs BASE_URL UDP_PORT RTMP_PORT (Node 20: --experimental-websocket)
import { launchBrowser, reporter } from './lib/browser.mjs';
import { observeMedia, videoPixels, observeAudio, decodedFrames } from './lib/media.mjs';
import { sleep, decodeMedia } from './lib/proc.mjs';
import { spawn } from 'node:child_process';
import { readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [base, , rtmpPort] = process.argv.slice(2);
const work = mkdtempSync(join(tmpdir(), 'estuary-ws-'));
const docs = readFileSync(new URL('../../docs/sdk.md', import.meta.url), 'utf8');
const webFile = (f) => readFileSync(new URL(`../../web/${f}`, import.meta.url), 'utf8');
const wsBase = base.replace(/^http/, 'ws');
const r = reporter();
const t0 = Date.now();
const sessions = async () => (await (await fetch(`${base}/api/v1/sessions`)).json()).sessions;
const streamInfo = async (s) => { const res = await fetch(`${base}/api/v1/streams/live/${s}`); return res.ok ? res.json() : null; };
const short = (o) => JSON.stringify(o)?.slice(0, 400);

// Polls fn() every 200 ms for at most ms; the first truthy value, or null.
async function until(fn, ms) {
  for (const end = Date.now() + ms; Date.now() < end; await sleep(200)) {
    const v = await fn().catch(() => null);
    if (v) return v;
  }
  return null;
}

function watch(page, who) {
  page.on('console', m => { if (m.type() === 'error' && !/favicon|status of 404/.test(m.text())) console.log(`#   ${who} console: ${m.text()}`); });
  page.on('pageerror', e => console.log(`#   ${who} page error: ${e.message}`));
}

async function newPage(url, who) {
  const page = await browser.context.newPage();
  watch(page, who);
  await page.goto(url);
  return page;
}

// publish.html with the form's fake camera and microphone; resolves to { page, id, size }.
async function publishPage(stream, transport, codec = 'VP8', effect = 'none') {
  const page = await newPage(`${base}/publish.html?app=live&stream=${stream}&codec=${codec}&transport=${transport}&effect=${effect}`, `publisher ${stream}`);
  await page.waitForFunction(() => typeof window.estuaryPublish === 'function');
  const id = await page.evaluate(() => window.estuaryPublish());
  const size = await page.evaluate(() => window.estuarySession.pc.getSenders().find(s => s.track?.kind === 'video')?.track.getSettings());
  return { page, id, size };
}

// play.html; resolves once the first frame is decoded (or after 10 s).
async function playPage(stream, transport) {
  const page = await newPage(`${base}/play.html?app=live&stream=${stream}&transport=${transport}`, `player ${stream} ${transport}`);
  await page.waitForFunction(() => typeof window.estuaryPlay === 'function');
  await page.evaluate(() => window.estuaryPlay());
  await page.waitForFunction(() => document.getElementById('video').videoWidth > 0, null, { timeout: 10000 }).catch(() => {});
  return page;
}

async function checkPlayer(label, page, size) {
  await page.bringToFront(); // background tabs render at a throttled rate
  const m = await observeMedia(page);
  r.check(`${label}: decodes frames (${m.frames} in 2.5 s)`, m.frames >= 15, short(m));
  r.check(`${label}: frame size ${m.width}x${m.height} is the camera's ${size?.width}x${size?.height}`, m.width === size?.width && m.height === size?.height, short(m));
  r.check(`${label}: the picture has detail and moves`, m.spread > 40 && m.changedSamples > 0, short(m));
  r.check(`${label}: audio samples with energy`, m.audioSamples > 48000 && m.audioEnergy > 0, short(m));
  return m;
}

// A page of the server (index.html) with a <video id="video"> and the SDK as window.sdk, for
// Publisher and Player driven from the test. The <video> is not muted: Chromium reports no audio
// energy for a track that only a muted element plays.
async function labPage(who) {
  const page = await newPage(`${base}/index.html`, who);
  await page.evaluate(async () => {
    document.body.append(Object.assign(document.createElement('video'), { id: 'video', autoplay: true, playsInline: true }));
    window.sdk = await import('/estuary.js');
  });
  return page;
}

// Node's WebSocket: resolves with what came back and how the socket closed.
function hostileSocket(path, act, ms = 3000) {
  return new Promise((resolve) => {
    const s = new WebSocket(wsBase + path);
    const got = [];
    const timer = setTimeout(() => { resolve({ got, closed: null }); try { s.close(); } catch { /* gone */ } }, ms);
    s.onopen = () => act(s);
    s.onmessage = (e) => { try { got.push(JSON.parse(e.data)); } catch { got.push(e.data); } };
    s.onclose = (e) => { clearTimeout(timer); resolve({ got, closed: { code: e.code, reason: e.reason } }); };
  });
}

const browser = await launchBrowser();
try {
  // 0. docs/sdk.md's ten-line pages are web/example-*.html, and they publish and play.
  const blocks = [...docs.matchAll(/```html\n([\s\S]*?)```/g)].map(m => m[1]);
  r.check('docs/sdk.md shows web/example-publish.html and web/example-play.html as they are',
    blocks[0] === webFile('example-publish.html') && blocks[1] === webFile('example-play.html'), `${blocks.length} html blocks`);
  const ep = await newPage(`${base}/example-publish.html`, 'example publisher');
  await ep.waitForFunction(() => window.publisher?.status === 'live', null, { timeout: 10000 }).catch(() => {});
  const epl = await newPage(`${base}/example-play.html`, 'example player');
  await epl.waitForFunction(() => document.getElementById('video').videoWidth > 0, null, { timeout: 10000 }).catch(() => {});
  const em = await observeMedia(epl, 2000);
  const ea = await observeAudio(epl, 1500, 'window.player.pc');
  r.check(`the ten-line pages publish and play over WebSockets (${em.frames} frames in 2 s, ${em.width}x${em.height}, audio ${ea.audioSamples} samples)`,
    em.frames >= 15 && em.changedSamples > 0 && em.width > 0 && ea.audioEnergy > 0, short({ em, ea }));
  await epl.evaluate(() => window.player.stop());
  await ep.evaluate(() => window.publisher.stop());
  await epl.close();
  await ep.close();

  // 1. WebSocket publish -> WebSocket play and WHEP play.
  const p1 = await publishPage('ws1', 'ws');
  r.check(`WebSocket publish answered with a session id (${p1.id})`, /^[0-9a-f]{16}$/.test(p1.id), p1.id);
  const listed = (await sessions()).find(s => s.id === p1.id);
  r.check('the API lists it as a websocket publisher', listed?.signaling === 'websocket' && listed.role === 'publisher', short(listed));
  const v1 = await playPage('ws1', 'ws');
  const v1id = await v1.evaluate(() => window.estuarySession?.session);
  r.check('WebSocket play: the server\'s offer named the session', /^[0-9a-f]{16}$/.test(v1id || ''), v1id);
  await checkPlayer('WebSocket publish -> WebSocket play', v1, p1.size);
  const v2 = await playPage('ws1', 'http');
  await checkPlayer('WebSocket publish -> WHEP play', v2, p1.size);
  await v2.evaluate(() => window.estuaryStop());
  await v2.close();
  const stats = await v1.evaluate(() => window.estuarySession.stats);
  r.check('Player stats: bitrate, fps, size, loss, RTT and jitter buffer delay', stats?.bitrate > 50000 && stats.fps > 5 && stats.width === p1.size.width &&
    stats.packetLoss >= 0 && stats.rtt >= 0 && stats.jitterBufferDelay > 0, short(stats));
  const pstats = await p1.page.evaluate(() => window.estuarySession.stats);
  r.check('Publisher stats: bitrate, fps, size, RTT', pstats?.bitrate > 50000 && pstats.fps > 5 && pstats.width === p1.size.width && pstats.rtt >= 0, short(pstats));

  // 2. mute()/unmute(): the player's audio goes silent and comes back.
  await v1.bringToFront();
  const loud = await observeAudio(v1, 2000);
  await p1.page.evaluate(() => window.estuarySession.mute());
  await sleep(1000);
  const quiet = await observeAudio(v1, 2000);
  await p1.page.evaluate(() => window.estuarySession.unmute());
  await sleep(1000);
  const back = await observeAudio(v1, 2000);
  r.check(`mute(): the player's audio energy drops to silence (${loud.audioEnergy.toExponential(2)} -> ${quiet.audioEnergy.toExponential(2)}, level ${quiet.maxLevel})`,
    loud.audioEnergy > 0 && quiet.audioEnergy <= loud.audioEnergy / 100 && quiet.maxLevel < 0.01 && quiet.audioSamples > 48000, short({ loud, quiet }));
  r.check(`unmute(): it comes back (${back.audioEnergy.toExponential(2)})`, back.audioEnergy > loud.audioEnergy / 10, short({ loud, back }));

  // 3. muteVideo()/unmuteVideo(): black frames, then the camera again.
  const before = await videoPixels(v1);
  await p1.page.evaluate(() => window.estuarySession.muteVideo());
  const black = await until(async () => { const p = await videoPixels(v1); return p.mean < 20 && p.spread < 30 ? p : null; }, 5000);
  await p1.page.evaluate(() => window.estuarySession.unmuteVideo());
  const again = await until(async () => { const p = await videoPixels(v1); return p.spread > 40 ? p : null; }, 5000);
  r.check('muteVideo(): the player\'s picture turns black', !!black && before.spread > 40, short({ before, black: black ?? await videoPixels(v1) }));
  r.check('unmuteVideo(): the camera\'s picture comes back', !!again, short(await videoPixels(v1)));

  // 4. shareScreen(): the screen (getDisplayMedia, 1280x720 here) in the same session, then back.
  const sessionBefore = await p1.page.evaluate(() => window.estuarySession.session);
  const sharing = await p1.page.evaluate(() => window.estuarySession.shareScreen());
  const screen = await until(async () => { const p = await videoPixels(v1); return Math.abs(p.width / p.height - 16 / 9) < 0.05 ? p : null; }, 8000);
  r.check(`shareScreen(): the player decodes the screen (${screen?.width}x${screen?.height}, 16:9) instead of the 4:3 camera`, sharing === true && !!screen, short(await videoPixels(v1)));
  const unsharing = await p1.page.evaluate(() => window.estuarySession.shareScreen());
  const camAgain = await until(async () => { const p = await videoPixels(v1); return p.width === p1.size.width && p.height === p1.size.height ? p : null; }, 8000);
  r.check('shareScreen() again: back to the camera\'s size', unsharing === false && !!camAgain, short(await videoPixels(v1)));
  r.check('... all in the same session', (await p1.page.evaluate(() => window.estuarySession.session)) === sessionBefore && (await sessions()).some(s => s.id === sessionBefore));

  // 5. The publisher restarts: the player re-establishes itself and decodes the new one.
  await p1.page.evaluate(() => window.estuaryStop());
  await sleep(500);
  const again1 = await p1.page.evaluate(() => window.estuaryPublish());
  const t5 = Date.now();
  const resumed = await until(async () => (await decodedFrames(v1, 500)).frames > 5, 10000);
  await v1.bringToFront();
  const m5 = await observeMedia(v1, 2000);
  r.check(`a WebSocket player decodes the new publisher within 10 s (${Date.now() - t5} ms; ${m5.frames} frames in 2 s after)`, !!resumed && m5.frames >= 10 && m5.changedSamples > 0, short(m5));
  console.log(`# publisher ${again1}; player session ${v1id} -> ${await v1.evaluate(() => window.estuarySession?.session)}`);

  // 5b. It returns with another codec (H.264 instead of VP8), which the player's session did not
  //     negotiate: the SDK re-establishes the session when no new frame comes within 3 s of
  //     publisher_returned (or when the server ends it).
  await p1.page.evaluate(() => window.estuaryStop());
  await sleep(500);
  await p1.page.evaluate(() => { document.getElementById('codec').value = 'H264'; return window.estuaryPublish(); });
  const t5b = Date.now();
  const h264 = await until(async () => {
    const codec = await v1.evaluate(async () => {
      let c = null;
      const st = await window.estuarySession?.pc?.getStats();
      st?.forEach(x => { if (x.type === 'inbound-rtp' && x.kind === 'video' && x.framesDecoded > 5) c = st.get(x.codecId)?.mimeType; });
      return c;
    });
    return codec === 'video/H264' && (await decodedFrames(v1, 500)).frames > 3 ? codec : null;
  }, 12000);
  const v1after = await v1.evaluate(() => window.estuarySession?.session);
  r.check(`the publisher returns with H.264 instead of VP8: the player decodes H.264 within 12 s (${Date.now() - t5b} ms, session ${v1id} -> ${v1after})`,
    !!h264 && v1after !== v1id, short(await v1.evaluate(() => ({ status: window.estuarySession?.status, stats: window.estuarySession?.stats }))));

  // 6. Closing the socket ends the session within a second.
  const id6 = await p1.page.evaluate(() => window.estuarySession.session);
  const t6 = Date.now();
  await p1.page.evaluate(() => window.estuaryStop());
  const gone = await until(async () => !(await sessions()).some(s => s.id === id6), 1500);
  const ms6 = Date.now() - t6;
  r.check(`Publisher.stop() (socket closed): the API stops listing the session within 1 s (${ms6} ms)`, !!gone && ms6 <= 1000);
  await p1.page.close();
  const t6b = Date.now();
  const v1stop = await v1.evaluate(() => window.estuarySession?.session);
  await v1.evaluate(() => window.estuaryStop());
  const gone2 = await until(async () => !(await sessions()).some(s => s.id === v1stop), 1500);
  r.check(`Player.stop(): its session too (${Date.now() - t6b} ms)`, !!gone2 && Date.now() - t6b <= 1000);
  await v1.close();

  // 7. WHIP publish -> WebSocket play, then hostile sockets while that player plays. The
  //    publisher paints its clock into the picture (publish.html's effect "clock", through
  //    canvasCallback, in a background tab), which the play page reads back as a latency.
  const p2 = await publishPage('ws2', 'http', 'H264', 'clock');
  r.check('WHIP publish answered (resource)', /\/whip\/live\/ws2\/[0-9a-f]{16}-[0-9a-f]{32}$/.test(p2.id), p2.id);
  const v3 = await playPage('ws2', 'ws');
  await checkPlayer('WHIP publish -> WebSocket play', v3, p2.size);
  const latency = await until(async () => {
    const t = await v3.evaluate(() => document.getElementById('latency').textContent);
    return /clock in the picture to now: \d+ ms/.test(t) ? t : null;
  }, 4000);
  const clockMs = Number(latency?.match(/to now: (\d+) ms/)?.[1]);
  r.check(`play.html reads the publisher's clock from the picture: ${clockMs} ms glass to glass`, clockMs >= 0 && clockMs < 1500,
    await v3.evaluate(() => document.getElementById('latency').textContent));
  await v3.bringToFront();
  const during = observeMedia(v3, 4000);
  const hostile = await Promise.all([
    ['malformed JSON', (s) => s.send('{"type":'), [1008]],
    ['an unknown type', (s) => s.send('{"type":"hello"}'), [1008]],
    ['a 100 KiB message', (s) => s.send(JSON.stringify({ type: 'ping', pad: 'x'.repeat(100 * 1024) })), [1009]],
    ['a flood of 200 messages', (s) => { for (let i = 0; i < 200; i++) s.send('{"type":"ping"}'); }, [1008]],
  ].map(async ([what, act, codes]) => ({ what, codes, ...(await hostileSocket(`/live/h-${what.length}/webrtc/publish`, act)) })));
  for (const h of hostile) {
    const err = h.got.find(m => m?.type === 'error');
    r.check(`${h.what}: the socket is closed with ${h.codes.join('/')} and a reason (${h.closed?.code} ${h.closed?.reason || err?.reason || ''})`,
      h.codes.includes(h.closed?.code) && !!(h.closed.reason || err?.reason), short({ closed: h.closed, err }));
  }
  const md = await during;
  r.check(`meanwhile the WebSocket player keeps decoding (${md.frames} frames in 4 s)`, md.frames >= 40 && md.changedSamples > 0, short(md));
  // The server ends the player's session (kicked through the API: event "closed"): the SDK
  // comes back with a new session by itself.
  const kicked = await v3.evaluate(() => window.estuarySession.session);
  const del = await fetch(`${base}/api/v1/sessions/${kicked}`, { method: 'DELETE' });
  const t7 = Date.now();
  const rejoined = await until(async () => {
    const id = await v3.evaluate(() => window.estuarySession.session);
    return id !== kicked && (await decodedFrames(v3, 500)).frames > 3 ? id : null;
  }, 8000);
  r.check(`a player kicked through the API (${del.status}) comes back by itself with a new session (${Date.now() - t7} ms)`, del.status === 200 && !!rejoined, rejoined);
  await v3.evaluate(() => window.estuaryStop());
  await v3.close();
  await p2.page.evaluate(() => window.estuaryStop());
  await p2.page.close();

  // 8. canvasCallback: a red 64x64 square painted over each frame reaches the player.
  const lab = await labPage('canvas lab');
  await lab.evaluate(async (wsBase) => {
    const { Publisher, Player } = window.sdk;
    window.pub = new Publisher(`${wsBase}/live/canvas/webrtc/publish`, {
      videoCodec: 'VP8',
      canvasCallback: (canvas, ctx) => { ctx.fillStyle = '#f00'; ctx.fillRect(0, 0, 64, 64); },
    });
    await window.pub.start();
    const v = document.getElementById('video');
    window.canvasPlayer = new Player(`${wsBase}/live/canvas/webrtc`, v);
    await window.canvasPlayer.play();
  }, wsBase);
  await lab.bringToFront();
  const red = await until(async () => {
    const p = await videoPixels(lab, '#video', { x: 8, y: 8, w: 48, h: 48 });
    return p.rgb[0] > 180 && p.rgb[1] < 70 && p.rgb[2] < 70 ? p : null;
  }, 8000);
  const rest = await videoPixels(lab, '#video', { x: 160, y: 160, w: 160, h: 160 });
  const cm = await observeMedia(lab, 2000).catch(e => ({ error: e.message }));
  r.check(`canvasCallback: the player's frames show the red square at the top left (${red?.rgb})`, !!red, short(await videoPixels(lab, '#video', { x: 8, y: 8, w: 48, h: 48 })));
  r.check('... and the camera elsewhere (not red, moving)', !(rest.rgb[0] > 180 && rest.rgb[1] < 70) && rest.spread > 40 && cm.frames >= 10, short({ rest, cm }));
  await lab.evaluate(async () => { await window.canvasPlayer.stop(); await window.pub.stop(); });

  // 9. Audio only: one sender; the player gets audio.
  const ao = await lab.evaluate(async (wsBase) => {
    const { Publisher, Player } = window.sdk;
    window.pub = new Publisher(`${wsBase}/live/podcast/webrtc/publish`, { constraints: { audio: true, video: false } });
    await window.pub.start();
    window.aoPlayer = new Player(`${wsBase}/live/podcast/webrtc`, document.getElementById('video'));
    await window.aoPlayer.play();
    return window.pub.pc.getSenders().map(s => s.track?.kind);
  }, wsBase);
  r.check(`audio-only Publisher: one audio sender (${ao})`, ao.join() === 'audio');
  await until(async () => lab.evaluate(() => window.aoPlayer.pc?.connectionState === 'connected'), 5000);
  const info9 = await streamInfo('podcast');
  const am = await observeAudio(lab, 2500, 'window.aoPlayer.pc');
  r.check(`audio-only: the stream has one Opus track, the player gets audio with energy (${am.audioSamples} samples)`,
    info9?.tracks?.length === 1 && info9.tracks[0].codec === 'opus' && am.audioSamples > 48000 && am.audioEnergy > 0, short({ tracks: info9?.tracks, am }));
  await lab.evaluate(async () => { await window.aoPlayer.stop(); await window.pub.stop(); });

  // 9b. Refusals: a missing token is final (401: error, play() rejects); a stream nobody
  //     publishes yet (404) is retried, and played once it is published (?token= on the socket).
  const refused = await lab.evaluate(async (wsBase) => {
    const p = new window.sdk.Player(`${wsBase}/locked/later/webrtc`, null);
    const statuses = [];
    p.opts.onStatus = (st, d) => statuses.push(`${st}${d ? ` ${d}` : ''}`);
    const err = await p.play().then(() => null, e => ({ status: e.status, message: e.message }));
    return { err, statuses, running: p._running };
  }, wsBase);
  r.check(`a player without the app's token: status error, play() rejects with 401, no retry (${refused.err?.message})`,
    refused.err?.status === 401 && refused.statuses.at(-1)?.startsWith('error 401') && !refused.running, short(refused));
  await lab.evaluate((wsBase) => {
    window.statuses = [];
    window.later = new window.sdk.Player(`${wsBase}/locked/later/webrtc`, document.getElementById('video'),
      { token: 'sesame', onStatus: (st, d) => window.statuses.push(`${st}${d ? ` ${d}` : ''}`) });
    window.laterPlaying = window.later.play();
  }, wsBase);
  await sleep(1500);
  const waiting = await lab.evaluate(() => window.statuses);
  await lab.evaluate(async (wsBase) => {
    window.pub = new window.sdk.Publisher(`${wsBase}/locked/later/webrtc/publish`, {});
    await window.pub.start();
    await window.laterPlaying;
  }, wsBase);
  const lm = await until(async () => { const f = await decodedFrames(lab, 500, 'window.later.pc'); return f.frames > 3 ? f : null; }, 10000);
  r.check('a player of a stream not published yet retries (404) and plays it once it is', waiting.some(x => /^reconnecting 404/.test(x)) && !!lm,
    short({ waiting, statuses: await lab.evaluate(() => window.statuses), lm }));
  await lab.evaluate(async () => { await window.later.stop(); await window.pub.stop(); });
  await lab.close();

  // 10. A room of three room.html pages: each plays the other two.
  const names = ['ann', 'bob', 'cid'];
  const rooms = [];
  for (const n of names) {
    const page = await newPage(`${base}/room.html?room=r3&name=${n}`, `room ${n}`);
    rooms.push(page);
  }
  const seen = await until(async () => {
    const all = await Promise.all(rooms.map(p => p.evaluate(() => [...(window.estuaryRoom?.players.keys() ?? [])].sort().join())));
    return all.every((k, i) => k === names.filter((_, j) => j !== i).map(x => `r3.${x}`).join()) ? all : null;
  }, 15000);
  r.check('room: each page plays the other two (room events)', !!seen, short(seen));
  // Video frames decoded so far by each of a room page's players, by stream.
  const roomFrames = (page) => page.evaluate(async () => {
    const out = {};
    for (const [s, { player }] of window.estuaryRoom.players) {
      let f = 0;
      (await player.pc?.getStats())?.forEach(x => { if (x.type === 'inbound-rtp' && x.kind === 'video') f = x.framesDecoded; });
      out[s] = f;
    }
    return out;
  });
  for (const [i, page] of rooms.entries()) {
    const got = await until(async () => {
      const fr = await roomFrames(page);
      await sleep(1000);
      const fr2 = await roomFrames(page);
      const ok = Object.keys(fr2).length === 2 && Object.keys(fr2).every(s => fr2[s] > (fr[s] ?? 0) + 5);
      return ok ? fr2 : null;
    }, 10000);
    r.check(`room: ${names[i]} decodes frames from the other two`, !!got, short(got));
  }
  // 11. docs/sdk.md's FFmpeg command mixes two of them into live/room-mix (HTTP-FLV in, RTMP
  //     out), and the mix plays back over HTTP-FLV.
  const cmd = docs.slice(docs.indexOf('## Mixing a room')).match(/```sh\n([\s\S]*?)```/)[1]
    .replaceAll('http://$HOST:8080', base).replaceAll('rtmp://$HOST:1935', `rtmp://127.0.0.1:${rtmpPort}`)
    .replaceAll('/team.ann', '/r3.ann').replaceAll('/team.bob', '/r3.bob');
  const mixer = spawn('timeout', ['-s', 'INT', '12', 'bash', '-c', cmd.replace('ffmpeg -hide_banner', 'ffmpeg -hide_banner -loglevel error')]);
  let mixErr = '';
  mixer.stderr.on('data', d => { mixErr += d; });
  const mixed = await until(async () => (await streamInfo('room-mix'))?.tracks?.length === 2, 8000);
  const mm = mixed ? await decodeMedia(`${base}/live/room-mix.flv`, 3, join(work, 'mix')) : { frames: 0 };
  const mixInfo = await streamInfo('room-mix');
  const f = mixInfo?.flv || {};
  r.check(`docs/sdk.md's FFmpeg command mixes the room into live/room-mix: ${f.width}x${f.height} ${f.video_codec} + ${f.audio_codec}, ${mm.frames} frames in 3 s, audio RMS ${mm.rms?.toFixed(0)}`,
    !!mixed && f.width === 1280 && f.height === 360 && mm.frames >= 40 && mm.spread > 40 && mm.rms > 50, short({ mm, flv: f, mixErr: mixErr.slice(-300) }));
  mixer.kill('SIGINT');
  await new Promise(res => { mixer.on('close', res); setTimeout(res, 3000); });

  await rooms[2].close({ runBeforeUnload: true });
  const left = await until(async () => {
    const all = await Promise.all(rooms.slice(0, 2).map(p => p.evaluate(() => [...window.estuaryRoom.players.keys()].join())));
    return all.every(k => !k.includes('cid')) ? all : null;
  }, 5000);
  r.check('room: when cid leaves, the others stop playing cid', !!left, short(left));
  for (const p of rooms.slice(0, 2)) { await p.evaluate(() => window.estuaryLeave()); await p.close(); }
  // 12. call.html: two pages on one link each play the other; a third on it is not played.
  const frameCount = (page) => page.evaluate(async () => {
    const out = {};
    for (const [s, { player }] of window.estuaryRoom.players) {
      let f = 0;
      (await player.pc?.getStats())?.forEach(x => { if (x.type === 'inbound-rtp' && x.kind === 'video') f = x.framesDecoded; });
      out[s] = f;
    }
    return out;
  });
  const calls = [];
  for (const who of ['caller', 'callee']) calls.push(await newPage(`${base}/call.html?id=t1`, `call ${who}`));
  const talking = await until(async () => {
    const [a, b] = await Promise.all(calls.slice(0, 2).map(frameCount));
    const [sa, sb] = await Promise.all(calls.slice(0, 2).map(p => p.evaluate(() => window.estuaryRoom.stream)));
    return Object.keys(a).join() === sb && Object.keys(b).join() === sa && a[sb] > 10 && b[sa] > 10 ? { a, b } : null;
  }, 12000);
  r.check('call.html: caller and callee each decode the other', !!talking, short(await Promise.all(calls.map(frameCount))));
  calls.push(await newPage(`${base}/call.html?id=t1`, 'call third'));
  await sleep(1500);
  const after = await Promise.all(calls.map(frameCount));
  r.check('call.html: a third page on the link plays one side; the two in the call keep playing each other only',
    after.every(x => Object.keys(x).length === 1) && Object.keys(after[0]).join() === Object.keys(talking?.a ?? {}).join(), short(after));
  for (const p of calls) await p.close({ runBeforeUnload: true });

  const none = await until(async () => (await sessions()).length === 0, 3000);
  r.check('no sessions left', !!none, short(await sessions()));
} catch (e) {
  r.check('the scenario ran to the end', false, e.stack);
} finally {
  await browser.close();
  rmSync(work, { recursive: true, force: true });
}
console.log(`# ${((Date.now() - t0) / 1000).toFixed(0)} s`);
process.exit(r.done());
