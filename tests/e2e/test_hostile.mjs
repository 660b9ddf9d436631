// Hostile clients next to a live viewer (see test_hostile.sh). FFmpeg publishes live/cam over
// RTMP from loopback; headless Chromium plays it over WHEP and the page records every decoded
// frame (requestVideoFrameCallback). From the second namespace (192.0.2.2), while Chromium
// plays and a legitimate FFmpeg publisher with valid credentials sends sec/atk:
//   1. the admin API                       -> 403
//   2. DELETE/PATCH of the player's session resource knowing only app/stream/id -> 404, it plays on
//   3. HLS of the play_token app without (or with a wrong) token -> 401 (403)
//   4. RTMP and HTTP-FLV players of a stream nobody publishes -> closed after limits.player_wait_ms;
//      300 idle RTMP connections -> past limits.max_sessions_per_ip refused at once, the others
//      closed after rtmp.handshake_timeout_ms / connect_timeout_ms
//   6. a 1 MiB message before connect     -> closed at once
//   7. an aiortc WHEP player sending NACKs for thousands of sequence numbers 20 times a second
//      -> the server's retransmissions to it stay within a few hundred a second
//   5. 200 WHIP offers in 2 s              -> most get 429 (limits.offers_per_ip)
//   8. random bytes to the HTTP and RTMP ports and WebRTC's UDP port
// Throughout: no gap over 1 s between Chromium's decoded frames, frames in every step. After:
// the legitimate publisher still publishes, a new one from 192.0.2.2 publishes and ffmpeg
// decodes it over HTTP-FLV, /api/v1/version answers. Usage: node test_hostile.mjs (environment
// from test_hostile.sh: ES_BASE, ES_PORT, ES_RTMP, ES_UDP, ES_SERVER_LOG, ES_PEER_NS)
import { launchBrowser, reporter } from './lib/browser.mjs';
import { playAndTimeFirstFrame } from './lib/media.mjs';
import {
  request, peerRequest, ffmpegPublish, ffmpegPlay, rtcPeer, serverLog, run, sleep, RTC_PEER,
} from './lib/clients.mjs';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';

const base = process.env.ES_BASE;
const port = process.env.ES_PORT, rtmpPort = process.env.ES_RTMP, udpPort = process.env.ES_UDP;
const peerNs = process.env.ES_PEER_NS;
const SERVER = '192.0.2.1';
const peerBase = `http://${SERVER}:${port}`;
const inPeer = ['nsenter', `--net=${peerNs}`];
const hostile = join(dirname(fileURLToPath(import.meta.url)), 'hostile_client.py');
const r = reporter();
const t0 = Date.now();
const note = (msg) => console.log(`# ${((Date.now() - t0) / 1000).toFixed(1)} s: ${msg}`);
const work = mkdtempSync(join(tmpdir(), 'estuary-hostile-'));
const procs = [];
const short = (x) => JSON.stringify(x)?.slice(0, 500);

async function attacker(args, timeoutMs = 30000) {
  const res = await run('nsenter', [`--net=${peerNs}`, '/usr/bin/python3', hostile, ...args], timeoutMs).done;
  try { return JSON.parse(res.out.trim().split('\n').pop()); } catch { return { error: `exit ${res.code}: ${res.err.slice(-400)}` }; }
}

const api = async (path) => (await request(`${base}${path}`)).json;

async function waitStream(path, timeoutMs = 15000) {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    const s = await api(`/api/v1/streams/${path}`);
    if (s?.flv?.tags_in > 20) return s;
    await sleep(200);
  }
  return null;
}

const browser = await launchBrowser();
const steps = [];
let page;
const pageNow = () => page.evaluate(() => performance.now());
async function step(name, fn) {
  note(name);
  const a = await pageNow();
  try { await fn(); } catch (e) { r.check(`${name}: ran`, false, e.stack); }
  steps.push({ name, a, b: await pageNow() });
}

try {
  // --- the viewer and the publishers ---------------------------------------------------------
  const pub = ffmpegPublish(`rtmp://127.0.0.1:${rtmpPort}/live/cam`, 170, { size: '640x360', rate: 25, gop: 50 });
  procs.push(pub.proc);
  const cam = await waitStream('live/cam');
  r.check('ffmpeg publishes live/cam over RTMP from loopback', !!cam, (await Promise.race([pub.done, sleep(10)]))?.err);
  const legit = ffmpegPublish(`rtmp://${SERVER}:${rtmpPort}/sec/atk?token=pubtok`, 170, { prefix: inPeer });
  procs.push(legit.proc);
  page = await browser.context.newPage();
  await page.goto(`${base}/play.html?app=live&stream=cam`);
  await page.waitForFunction(() => typeof window.estuaryPlay === 'function');
  const firstMs = await playAndTimeFirstFrame(page, 15000);
  const resource = await page.evaluate(() => {
    const v = document.getElementById('video');
    window.__ts = [];
    const cb = () => { window.__ts.push(performance.now()); v.requestVideoFrameCallback(cb); };
    v.requestVideoFrameCallback(cb);
    return window.estuarySession.resource;
  });
  const rm = new URL(resource).pathname.match(/^\/whep\/live\/cam\/([0-9a-f]{16})-([0-9a-f]{32})$/);
  r.check(`Chromium plays live/cam over WHEP (first frame after ${firstMs.toFixed(0)} ms; resource ${new URL(resource).pathname})`, !!rm, resource);
  const id = rm ? rm[1] : '0000000000000000';
  const legitInfo = await waitStream('sec/atk');
  r.check('a legitimate publisher from 192.0.2.2 publishes sec/atk with ?token=pubtok', legitInfo?.source === 'rtmp', (await Promise.race([legit.done, sleep(10)]))?.err);
  await sleep(1000);
  const attackStart = await pageNow();

  // --- 1. the admin API from 192.0.2.2 --------------------------------------------------------
  await step('1. admin API from 192.0.2.2', async () => {
    for (const [method, path] of [['GET', '/api/v1/sessions'], ['GET', `/api/v1/sessions/${id}`], ['DELETE', `/api/v1/sessions/${id}`]]) {
      const res = await peerRequest(peerNs, `${peerBase}${path}`, { method });
      r.check(`1. ${method} ${path} from 192.0.2.2: 403`, res.status === 403, `${res.status} ${res.text} ${res.error || ''}`);
    }
  });
  const alive = async () => (await api(`/api/v1/sessions/${id}`))?.state === 'connected';
  r.check('1. the player\'s session is still connected', await alive());

  // --- 2. the player's resource, knowing app/stream/id only -----------------------------------
  await step('2. cross-app and secret-less DELETE/PATCH of the player\'s resource', async () => {
    const trickle = { 'Content-Type': 'application/trickle-ice-sdpfrag' };
    for (const [method, path] of [
      ['DELETE', `/whep/other/x/${id}`], ['DELETE', `/whep/live/cam/${id}`], ['PATCH', `/whep/live/cam/${id}`],
      ['DELETE', `/whep/live/cam/${id}-${randomBytes(16).toString('hex')}`], ['PATCH', `/whep/other/x/${id}-${randomBytes(16).toString('hex')}`],
      ['DELETE', `/whip/live/cam/${id}`], ['DELETE', `/whep/sec/atk/${id}`]]) {
      const res = await peerRequest(peerNs, `${peerBase}${path}`, { method, headers: method === 'PATCH' ? trickle : {} });
      r.check(`2. ${method} ${path.replace(id, '{id}').replace(/-[0-9a-f]{32}$/, '-{random}')} from 192.0.2.2: 404`, res.status === 404, `${res.status} ${res.text}`);
    }
  });
  r.check('2. the player\'s session is still connected after them', await alive());

  // --- 3. HLS of a play_token app -------------------------------------------------------------
  await step('3. HLS of the play_token app', async () => {
    const none = await peerRequest(peerNs, `${peerBase}/sec/atk.m3u8`);
    const wrong = await peerRequest(peerNs, `${peerBase}/sec/atk.m3u8?token=guess`);
    const seg = await peerRequest(peerNs, `${peerBase}/sec/atk/0.ts`);
    r.check('3. GET /sec/atk.m3u8 without a token: 401', none.status === 401, `${none.status} ${none.text}`);
    r.check('3. ... with a wrong token: 403; a segment without a token: 401', wrong.status === 403 && seg.status === 401, `${wrong.status} ${seg.status}`);
  });

  // --- 4. waiting players and idle RTMP connections -------------------------------------------
  await step('4a. players of a stream nobody publishes', async () => {
    const players = [0, 1, 2].map(() => ffmpegPlay(`rtmp://${SERVER}:${rtmpPort}/live/nobody`, 1, { prefix: inPeer, timeoutMs: 20000 }));
    const flv = run('nsenter', [`--net=${peerNs}`, 'curl', '-s', '-o', '/dev/null', '-w', '%{http_code} %{time_total}', '--max-time', '15',
      `${peerBase}/live/nobody.flv`], 20000).done;
    const res = await Promise.all(players);
    const f = await flv;
    const secs = res.map(x => x.ms / 1000);
    const flvSecs = Number(f.out.split(' ')[1]);
    r.check(`4. RTMP players waiting for an unpublished stream are closed after limits.player_wait_ms (3 s): ${secs.map(s => s.toFixed(1)).join(', ')} s`,
      secs.every(s => s >= 2.8 && s <= 6), JSON.stringify(res.map(x => x.err.slice(0, 100))));
    r.check(`4. an HTTP-FLV player waiting for it is closed after limits.player_wait_ms: ${f.out}`, flvSecs >= 2.8 && flvSecs <= 6, f.out + f.err);
    const lines = serverLog().filter(l => l.includes('nobody published live/nobody for limits.player_wait_ms'));
    r.check(`4. the log says why (${lines.length} lines)`, lines.length >= 1, '');
  });
  await step('4b. 300 idle RTMP connections', async () => {
    const res = await attacker(['idle', SERVER, rtmpPort, '300', '--handshake', '10', '--half', '10', '--seconds', '8']);
    note(`idle connections: ${short(res)}`);
    r.check(`4. 300 idle RTMP connections: at most limits.max_sessions_per_ip (20, one taken by the publisher) are served, ${res.closed_fast} are refused at once`,
      res.served <= 20 && res.closed_fast >= 270 && res.connected + res.never_connected === 300, short(res));
    r.check(`4. the admitted idle connections are closed after rtmp.handshake_timeout_ms / connect_timeout_ms (2 s): ${JSON.stringify(res.later_close_s)}`,
      res.open_at_end === 0 && res.closed_later <= 20 && res.later_close_s.every(s => s >= 1.8 && s <= 4.5), short(res));
    const refused = serverLog().filter(l => /connection refused: too many sessions from this address: limits\.max_sessions_per_ip is 20/.test(l));
    r.check('4. the log says "connection refused: too many sessions from this address"', refused.length >= 1, `${refused.length} lines`);
  });

  // --- 6. a 1 MiB message before connect ------------------------------------------------------
  await step('6. a 1 MiB RTMP message before connect', async () => {
    const res = await attacker(['bigmsg', SERVER, rtmpPort, '--length', String(1 << 20)]);
    r.check(`6. a chunk header announcing 1048576 bytes before connect: closed by the server within 1 s (${res.close_s} s, ${res.sent} payload bytes sent)`,
      res.closed && res.close_s <= 1, short(res));
  });

  // --- 7. a NACK storm ------------------------------------------------------------------------
  await step('7. NACK storm from an aiortc WHEP player', async () => {
    const storm = rtcPeer(['play', `${peerBase}/whep/live/cam`, '9', '--host', '192.0.2.2', '--nack-storm', '20', '--nack-span', '2048', '--delete'], { prefix: inPeer });
    procs.push(storm.proc);
    const a = await storm.next(['answered', 'refused'], 20000);
    const sid = (a?.location || '').match(/\/([0-9a-f]{16})-/)?.[1];
    r.check('7. the storming player is admitted (201)', !!sid, short(a) + storm.err.slice(-300));
    const samples = [];
    for (let i = 0; sid && i < 9; i++) {
      await sleep(1000);
      const s = await api(`/api/v1/sessions/${sid}`);
      if (s && typeof s.age_ms === 'number') /* the player may have left: a 404 then */
        samples.push({ age: s.age_ms, nacks: s.nacks, retransmits: s.retransmits, ignored: s.nacks_ignored });
    }
    const done = await storm.next('done', 20000);
    note(`storm: ${short(done)}; server samples ${JSON.stringify(samples)}`);
    const rates = samples.slice(1).map((s, i) => (s.retransmits - samples[i].retransmits) * 1000 / Math.max(1, s.age - samples[i].age));
    const first = samples[0], last = samples[samples.length - 1];
    const avg = last && samples.length > 1 ? (last.retransmits - first.retransmits) * 1000 / (last.age - first.age) : NaN;
    r.check(`7. the storm reached the server (${last?.nacks} sequence numbers NACKed in ${((last?.age || 0) / 1000).toFixed(1)} s)`,
      last?.nacks >= 50000, JSON.stringify(samples));
    r.check(`7. retransmissions to the storming player stay bounded: ${avg.toFixed(0)}/s on average (<= 300), at most ${Math.max(...rates).toFixed(0)}/s in a second (<= 500), ${last?.retransmits} in all`,
      avg <= 300 && rates.every(x => x <= 500) && last.retransmits / (last.age / 1000) <= 400, JSON.stringify(samples));
    r.check(`7. the NACKs not answered are counted (nacks_ignored ${last?.ignored})`, last?.ignored > 0,
      JSON.stringify(samples));
  });

  // --- 5. an offer flood ----------------------------------------------------------------------
  await step('5. 200 WHIP offers in 2 s', async () => {
    const sdp = join(work, 'offer.sdp');
    const o = await run('/usr/bin/python3', [RTC_PEER, 'offer', 'publish'], 30000).done;
    writeFileSync(sdp, o.out);
    const res = await attacker(['offers', `${peerBase}/whip/live/flood`, '200', '--sdp', sdp, '--seconds', '2'], 60000);
    note(`offers: ${short(res)}`);
    const limited = res.errors?.['too many offers from this address: limits.offers_per_ip is 5 a second'] || 0;
    r.check(`5. most of 200 offers in 2 s get 429 "too many offers from this address" (${limited}; statuses ${JSON.stringify(res.statuses)})`,
      (res.statuses?.['429'] || 0) >= 150 && limited >= 150 && !Object.keys(res.statuses || {}).some(s => s >= 500 || s === '0'), short(res));
  });

  // --- 8. garbage to every port ---------------------------------------------------------------
  await step('8. random bytes to HTTP, RTMP and UDP', async () => {
    const [h, m, u] = await Promise.all([
      attacker(['garbage-tcp', SERVER, port, '--connections', '5', '--bytes', '65536', '--wait', '3']),
      attacker(['garbage-tcp', SERVER, rtmpPort, '--connections', '5', '--bytes', '65536', '--wait', '3']),
      attacker(['garbage-udp', SERVER, udpPort, '--count', '3000', '--seconds', '1.5']),
    ]);
    note(`garbage: HTTP ${short(h)} RTMP ${short(m)} UDP ${short(u)}`);
    r.check(`8. random bytes on the HTTP port: every connection closed (${h.closed}/5, answered ${h.answered}: ${h.first_line})`, h.closed === 5, short(h));
    r.check(`8. random bytes on the RTMP port: every connection closed (${m.closed}/5)`, m.closed === 5, short(m));
    r.check(`8. 3000 random datagrams sent to the WebRTC UDP port (${u.sent})`, u.sent === 3000, short(u));
  });
  const attackEnd = await pageNow();

  // --- the viewer during all of it ------------------------------------------------------------
  const ts = await page.evaluate(() => window.__ts);
  const window_ = (a, b) => {
    const inside = ts.filter(t => t >= a && t <= b);
    const pts = [a, ...inside, b];
    let gap = 0;
    for (let i = 1; i < pts.length; i++) gap = Math.max(gap, pts[i] - pts[i - 1]);
    return { frames: inside.length, gap, secs: (b - a) / 1000 };
  };
  for (const s of steps) {
    const w = window_(s.a, s.b);
    r.check(`Chromium during "${s.name}" (${w.secs.toFixed(1)} s): ${w.frames} frames, longest gap ${w.gap.toFixed(0)} ms (<= 1000)`,
      w.gap <= 1000 && (w.secs < 0.5 || w.frames > 0), JSON.stringify(w));
  }
  const all = window_(attackStart, attackEnd);
  r.check(`Chromium through the whole attack (${all.secs.toFixed(1)} s): ${all.frames} frames (${(all.frames / all.secs).toFixed(1)} fps), longest gap ${all.gap.toFixed(0)} ms (<= 1000)`,
    all.gap <= 1000 && all.frames > all.secs * 5, JSON.stringify(all));
  r.check('the player\'s session is still connected after the attacks', await alive());

  // --- after ------------------------------------------------------------------------------------
  const legitAfter = await api('/api/v1/streams/sec/atk');
  r.check(`the legitimate publisher from 192.0.2.2 kept publishing through the attacks (tags ${legitInfo?.flv?.tags_in} -> ${legitAfter?.flv?.tags_in})`,
    legitAfter?.source === 'rtmp' && legitAfter.flv.tags_in > (legitInfo?.flv?.tags_in || 0) + 100, short(legitAfter?.flv));
  // The admitted flood offers never connect: they go after webrtc.dtls_timeout_ms (3 s).
  for (let i = 0; i < 40; i++) {
    const ss = (await api('/api/v1/sessions'))?.sessions || [];
    if (!ss.some(s => (s.http_remote || s.remote || '').startsWith('192.0.2.2:') && s.protocol === 'webrtc')) break;
    await sleep(250);
  }
  const fresh = ffmpegPublish(`rtmp://${SERVER}:${rtmpPort}/sec/atk2?token=pubtok`, 15, { prefix: inPeer });
  procs.push(fresh.proc);
  const freshInfo = await waitStream('sec/atk2', 15000);
  r.check('after the attacks, a new publisher from 192.0.2.2 with valid credentials publishes sec/atk2', freshInfo?.source === 'rtmp',
    (await Promise.race([fresh.done, sleep(10)]))?.err);
  const dec = await ffmpegPlay(`${base}/sec/atk2.flv?token=playtok`, 1);
  r.check(`... and ffmpeg decodes it over HTTP-FLV (${dec.frames} frames)`, dec.frames >= 1, dec.err.slice(0, 300));
  const v = await request(`${base}/api/v1/version`);
  const vp = await peerRequest(peerNs, `${peerBase}/api/v1/version`);
  r.check('/api/v1/version answers (loopback and 192.0.2.2)', v.status === 200 && v.json?.name === 'estuary' && vp.status === 200, `${v.status} ${vp.status}`);
  await page.evaluate(() => window.estuaryStop()).catch(() => {});
} catch (e) {
  r.check('test ran to the end', false, e.stack);
} finally {
  for (const p of procs) { try { p.kill('SIGKILL'); } catch { /* gone */ } }
  await browser.close();
  rmSync(work, { recursive: true, force: true });
}
note('done');
process.exit(r.done());
