// Connect-time benchmark, driven by bench_connect.sh (which starts the server and explains the
// environment variables). One Chromium page publishes its fake camera and microphone to live/bench
// with WHIP; then N WHEP players, one after another, each in a fresh page (or a fresh
// RTCPeerConnection with BENCH_REUSE_PAGE=1), closed (pc.close() and DELETE, until the API no
// longer lists it) before the next one starts. Each player's times are taken on its page's own
// clock (performance.now()) from just before the WHEP POST's fetch() to: the 201 answer, ICE
// connected (iceConnectionState), DTLS connected (connectionState 'connected') and the first
// decoded frame (requestVideoFrameCallback on a <video> playing the remote stream); with
// BENCH_SIGNALING=ws the players use WebSocket signaling instead, timed from just before
// `new WebSocket` (the server's offer stands for the 201 answer). The server
// log gives, per session, "ICE: client nominated ... after N ms" and "DTLS connected ... N ms after
// the offer" (from the server's receipt of the offer). A session that does not connect and
// decode a frame within BENCH_TIMEOUT_MS is a failure, listed with the times it did reach.
// Usage: node bench_connect.mjs BASE_URL UDP_PORT RTMP_PORT (as es_run_with_server runs it;
// BENCH_N: the number of players, ES_SERVER_LOG: the server's log file)
import { launchBrowser } from '../e2e/lib/browser.mjs';
import { firewall } from '../e2e/lib/firewall.mjs';
import { waitFor, sleep } from '../e2e/lib/proc.mjs';
import { readFileSync, writeFileSync } from 'node:fs';

const [base, udpPort] = process.argv.slice(2);
const BLOCK_UDP = process.env.BENCH_BLOCK_UDP === '1'; // every session falls back to ICE-TCP
const nArg = process.env.BENCH_N;
const N = Number(nArg || 30);
const CODEC = (process.env.BENCH_CODEC || 'H264').toUpperCase();
const TIMEOUT_MS = Number(process.env.BENCH_TIMEOUT_MS || 10000);
const GAP_MS = Number(process.env.BENCH_GAP_MS || 250);
const REUSE_PAGE = process.env.BENCH_REUSE_PAGE === '1';
const WS = process.env.BENCH_SIGNALING === 'ws'; // WebSocket signaling instead of WHEP
const SLOW_MS = 500; // sessions slower than this to DTLS connected get their details printed
const STREAM = 'bench';
const api = async (path, init) => fetch(base + path, { ...init, signal: AbortSignal.timeout(5000) });

// Runs in the page: one WHEP session, as web/estuary.js's play() makes it (recvonly audio and
// video, max-bundle, the offer posted at once), with time stamps; then closes it.
async function whepSession({ url, timeoutMs, ws }) {
  const now = () => performance.now();
  const T = {};        // absolute performance.now() values; made relative to the POST below
  const events = [];   // [what, state, time]
  const mark = (what, state) => events.push([what, state, now()]);
  const video = document.createElement('video');
  video.autoplay = true; video.muted = true; video.playsInline = true; video.width = 320;
  document.body.append(video);
  const pc = new RTCPeerConnection({ iceServers: [], bundlePolicy: 'max-bundle' });
  let done, failedEarly = '';
  const finished = new Promise(res => { done = res; });
  const check = () => { if (T.connected != null && T.frame != null) done(); };
  pc.oniceconnectionstatechange = () => {
    mark('ice', pc.iceConnectionState);
    if (pc.iceConnectionState === 'connected' && T.ice == null) T.ice = now();
    if (pc.iceConnectionState === 'checking' && T.checking == null) T.checking = now();
  };
  pc.onconnectionstatechange = () => {
    mark('pc', pc.connectionState);
    if (pc.connectionState === 'connected' && T.connected == null) { T.connected = now(); check(); }
    if (pc.connectionState === 'failed') { failedEarly = 'connectionState failed'; done(); }
  };
  const media = new MediaStream();
  pc.ontrack = (e) => {
    if (T.track == null) {
      // The first track event comes while the answer is applied, before ICE checks: watch the
      // DTLS transport (its 'connecting' is the moment ICE has a pair) and Chromium's pair choice.
      T.track = now();
      const t = e.receiver.transport;
      if (t) {
        t.addEventListener('statechange', () => {
          mark('dtls', t.state);
          if (t.state === 'connecting' && T.dtlsStart == null) T.dtlsStart = now();
        });
        t.iceTransport?.addEventListener('selectedcandidatepairchange', () => {
          mark('ice-pair', 'selected');
          if (T.pairSelected == null) T.pairSelected = now();
        });
      }
    }
    media.addTrack(e.track);
    if (video.srcObject !== media) {
      video.srcObject = media;
      const onFrame = (_, meta) => {
        if (video.videoWidth > 0) { T.frame = now(); T.framePresented = meta.presentationTime; check(); }
        else video.requestVideoFrameCallback(onFrame);
      };
      video.requestVideoFrameCallback(onFrame);
    }
  };
  let resource = null, error = '', sock = null;
  try {
    if (ws) {
      // WebSocket signaling (docs/websocket.md): the server offers on connect, we answer.
      T.post = now();
      sock = new WebSocket(url);
      const offer = await new Promise((res, rej) => {
        sock.onmessage = (e) => {
          const m = JSON.parse(e.data);
          if (m.type === 'offer') res(m);
          else if (m.type === 'error') rej(new Error(`WebSocket: ${m.status} ${m.reason}`));
        };
        sock.onclose = (e) => rej(new Error(`WebSocket closed: ${e.code} ${e.reason}`));
        setTimeout(() => rej(new Error(`no offer within ${timeoutMs} ms`)), timeoutMs);
      });
      T.answer = now();
      resource = `${url}/${offer.session}`;
      await pc.setRemoteDescription({ type: 'offer', sdp: offer.sdp });
      await pc.setLocalDescription(await pc.createAnswer());
      sock.send(JSON.stringify(pc.localDescription));
    } else {
      pc.addTransceiver('audio', { direction: 'recvonly' });
      pc.addTransceiver('video', { direction: 'recvonly' });
      T.offer = now();
      await pc.setLocalDescription(await pc.createOffer());
      T.post = now();
      const res = await fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/sdp' },
                                     body: pc.localDescription.sdp, signal: AbortSignal.timeout(timeoutMs) });
      T.answer = now();
      const text = await res.text();
      if (res.status !== 201) throw new Error(`WHEP POST: ${res.status} ${text}`);
      resource = new URL(res.headers.get('Location'), url).href;
      await pc.setRemoteDescription({ type: 'answer', sdp: text });
    }
    T.srd = now();
    const left = T.post + timeoutMs - now();
    let timer;
    await Promise.race([finished, new Promise(res => { timer = setTimeout(res, Math.max(0, left)); })]);
    clearTimeout(timer);
    if (failedEarly) error = failedEarly;
    else if (T.connected == null || T.frame == null)
      error = `${T.connected == null ? 'not connected' : 'connected'}${T.frame == null ? ', no decoded frame' : ''} within ${timeoutMs} ms`;
  } catch (e) {
    error = String(e && e.message || e);
  }
  // The times as they stood at the bound (a frame may still arrive while stats are read).
  const times = { ...T }, seen = events.slice();
  // What Chromium saw of ICE: every candidate pair and the transport's selected one.
  const pairs = [], inbound = {};
  let transport = {};
  try {
    const stats = await pc.getStats();
    const cand = (id) => { const c = stats.get(id); return c ? `${c.address || c.ip}:${c.port}/${c.candidateType}` : '?'; };
    stats.forEach(s => {
      if (s.type === 'transport') transport = { dtlsState: s.dtlsState, iceState: s.iceState, selectedPair: s.selectedCandidatePairId, pairChanges: s.selectedCandidatePairChanges };
      if (s.type === 'inbound-rtp') inbound[s.kind] = { packets: s.packetsReceived, framesDecoded: s.framesDecoded };
    });
    stats.forEach(s => {
      if (s.type === 'candidate-pair') pairs.push({
        local: cand(s.localCandidateId), remote: cand(s.remoteCandidateId), state: s.state,
        nominated: !!s.nominated, selected: s.id === transport.selectedPair,
        requestsSent: s.requestsSent, responsesReceived: s.responsesReceived,
        requestsReceived: s.requestsReceived, rtt: s.currentRoundTripTime,
      });
    });
  } catch { /* stats are diagnostics only */ }
  pc.close();
  if (sock) sock.close(); // the socket is the session
  else if (resource) await fetch(resource, { method: 'DELETE', signal: AbortSignal.timeout(5000) }).catch(() => {});
  video.srcObject = null;
  video.remove();
  const rel = {};
  const zero = times.post ?? times.offer;
  for (const [k, v] of Object.entries(times)) if (v != null) rel[k] = +(v - zero).toFixed(1);
  return {
    resource, error, t: rel, pairs, transport, inbound,
    events: seen.map(([w, s, v]) => [w, s, +(v - zero).toFixed(1)]),
  };
}

function percentile(sorted, p) { // nearest rank
  if (!sorted.length) return null;
  return sorted[Math.min(sorted.length, Math.max(1, Math.ceil(p / 100 * sorted.length))) - 1];
}
function stats(values) {
  const v = values.filter(x => x != null).sort((a, b) => a - b);
  return { n: v.length, min: v[0] ?? null, p50: percentile(v, 50), p95: percentile(v, 95), max: v.at(-1) ?? null };
}
const fmt = (x) => x == null ? '-' : x.toFixed(0);

// The server log's per-session lines, by session id (the resource's last path segment).
function serverView(logText) {
  const byPeer = new Map();
  const get = (id) => { if (!byPeer.has(id)) byPeer.set(id, { lines: [] }); return byPeer.get(id); };
  for (const line of logText.split('\n')) {
    const m = / peer=([0-9a-f]+)/.exec(line);
    if (!m) continue;
    const p = get(m[1]);
    if (!/ DEBUG http: /.test(line)) p.lines.push(line);
    let k;
    // Before 3510022: "ICE: client nominated R -> L after N ms" (the only pair the server used).
    // From 3510022: "ICE: pair R -> L valid after N ms" (debug) for every pair a check made
    // valid, and "ICE: media to R from L (nominated | not nominated yet) after N ms". From
    // ICE-TCP: "ICE: pair R -> L (udp|tcp) valid after N ms".
    if ((k = /ICE: client nominated (\S+) -> (\S+) after (\d+) ms/.exec(line)) && p.nominatedMs == null) {
      p.nominatedMs = Number(k[3]); p.nominatedPair = `${k[1]} -> ${k[2]}`;
    }
    if ((k = /ICE: media to (\S+) from (\S+) \(nominated\) after (\d+) ms/.exec(line)) && p.nominatedMs == null) {
      p.nominatedMs = Number(k[3]); p.nominatedPair = `${k[1]} -> ${k[2]}`;
    }
    if ((k = /ICE: pair (\S+) -> (\S+) (?:\((?:udp|tcp)\) )?valid after (\d+) ms/.exec(line)) && p.validMs == null) p.validMs = Number(k[3]);
    if ((k = /DTLS connected \(([^)]+)\) (\d+) ms after the offer; (\S+)/.exec(line)) && p.dtlsMs == null) {
      p.dtlsMs = Number(k[2]); p.role = k[3];
    }
  }
  return byPeer;
}

if (BLOCK_UDP) firewall([`udp dport ${udpPort}`, `udp sport ${udpPort}`]);
const browser = await launchBrowser();
const results = [];
let publisher = null, setupError = '';
try {
  const pub = await browser.context.newPage();
  pub.on('console', m => { if (m.type() === 'error' && !/Failed to load resource.*404/.test(m.text())) console.log(`# publisher console: ${m.text()}`); });
  await pub.goto(`${base}/publish.html?app=live&stream=${STREAM}&codec=${CODEC}`);
  await pub.waitForFunction(() => typeof window.estuaryPublish === 'function', null, { timeout: 15000 });
  const pubResource = await pub.evaluate(() => window.estuaryPublish());
  const info = await waitFor('the publisher\'s media', async () => {
    const s = await (await api(`/api/v1/streams/live/${STREAM}`)).json();
    return s.packets_in > 50 && s.tracks?.length === 2 ? s : null;
  }, 15000);
  publisher = { resource: pubResource, tracks: info.tracks.map(t => `${t.kind} ${t.codec}${t.width ? ` ${t.width}x${t.height}` : ''}`) };
  console.log(`# publisher: ${publisher.tracks.join(', ')}${BLOCK_UDP ? ' (UDP to the server dropped: ICE-TCP)' : ''}; ${N} players, one after another, ${REUSE_PAGE ? 'one page, a fresh RTCPeerConnection each' : 'a fresh page each'}, ${TIMEOUT_MS} ms bound each`);

  let page = null;
  for (let i = 1; i <= N; i++) {
    if (!page) {
      page = await browser.context.newPage();
      await page.goto(`${base}/play.html?app=live&stream=${STREAM}`);
    }
    await page.bringToFront(); // background pages render at a throttled rate
    let r;
    try {
      r = await Promise.race([
        page.evaluate(whepSession, { url: WS ? `${base.replace(/^http/, 'ws')}/live/${STREAM}/webrtc` : `${base}/whep/live/${STREAM}`, timeoutMs: TIMEOUT_MS, ws: WS }),
        sleep(TIMEOUT_MS + 10000).then(() => { throw new Error('the page did not answer'); }),
      ]);
    } catch (e) {
      r = { resource: null, error: e.message, t: {}, pairs: [], events: [] };
    }
    r.i = i;
    r.id = r.resource ? r.resource.split('/').pop().split('-')[0] : null; // <id>-<secret>
    r.ok = !r.error;
    results.push(r);
    const t = r.t;
    console.log(`# ${String(i).padStart(3)} ${r.id || '-'}: answer ${fmt(t.answer)}, ICE ${fmt(t.ice)}, DTLS ${fmt(t.connected)}, frame ${fmt(t.frame)} ms${r.ok ? '' : `  FAILED: ${r.error}`}`);
    if (!REUSE_PAGE) { await page.close().catch(() => {}); page = null; }
    // The next one starts once the server no longer lists this one.
    if (r.id) await waitFor('the player session to go', async () => {
      const s = (await (await api('/api/v1/sessions')).json()).sessions;
      return !s.some(x => x.id === r.id);
    }, 5000).catch(e => console.log(`# ${e.message}`));
    await sleep(GAP_MS);
  }
  if (page) await page.close().catch(() => {});
  await pub.evaluate(() => window.estuaryStop()).catch(() => {});
} catch (e) {
  setupError = e.stack || String(e);
  console.log(`FAIL - ${setupError}`);
} finally {
  await browser.close();
  if (BLOCK_UDP) firewall([]);
}

// The server's view.
let logText = '';
try { logText = readFileSync(process.env.ES_SERVER_LOG, 'utf8'); } catch { /* none */ }
const srv = serverView(logText);
for (const r of results) {
  const s = r.id && srv.get(r.id);
  r.server = s ? { validMs: s.validMs ?? null, nominatedMs: s.nominatedMs ?? null, nominatedPair: s.nominatedPair ?? null, dtlsMs: s.dtlsMs ?? null } : null;
}
const pubId = publisher?.resource?.split('/').pop().split('-')[0];
const pubSrv = pubId && srv.get(pubId);
if (pubSrv) console.log(`# publisher (server log): first valid pair after ${fmt(pubSrv.validMs)} ms, ICE nominated after ${fmt(pubSrv.nominatedMs)} ms, DTLS connected ${fmt(pubSrv.dtlsMs)} ms after the offer`);

// Per-session table.
console.log(`\n## Sessions (ms from just before the ${WS ? 'WebSocket opened' : 'WHEP POST'}, page clock; server: ms from its receipt of the offer)`);
console.log('|   # | session          | 201 answer | ICE connected | DTLS connected | first frame | server pair valid | server ICE nominated | server DTLS connected | result |');
console.log('| --: | ---------------- | ---------: | ------------: | -------------: | ----------: | ----------------: | -------------------: | --------------------: | ------ |');
for (const r of results) {
  console.log(`| ${String(r.i).padStart(3)} | ${(r.id || '-').padEnd(16)} | ${fmt(r.t.answer).padStart(10)} | ${fmt(r.t.ice).padStart(13)} | ${fmt(r.t.connected).padStart(14)} | ${fmt(r.t.frame).padStart(11)} | ${fmt(r.server?.validMs).padStart(17)} | ${fmt(r.server?.nominatedMs).padStart(20)} | ${fmt(r.server?.dtlsMs).padStart(21)} | ${r.ok ? 'ok' : 'FAILED: ' + r.error} |`);
}

// Slow or failed sessions: what Chromium and the server said.
const slow = results.filter(r => !r.ok || (r.t.connected ?? Infinity) > SLOW_MS);
for (const r of slow) {
  console.log(`\n### session ${r.i} (${r.id || 'no id'}): ${r.ok ? `DTLS connected after ${fmt(r.t.connected)} ms` : 'FAILED: ' + r.error}`);
  console.log(`#   page events: ${r.events.map(([w, s, v]) => `${w}:${s}@${fmt(v)}`).join(' ')}; times ${JSON.stringify(r.t)}`);
  for (const p of r.pairs || [])
    console.log(`#   Chromium pair ${p.local} -> ${p.remote}: ${p.state}${p.nominated ? ', nominated' : ''}${p.selected ? ', selected' : ''}, requests sent ${p.requestsSent}, responses ${p.responsesReceived}, requests received ${p.requestsReceived}`);
  for (const l of (r.id && srv.get(r.id)?.lines) || []) console.log(`#   server: ${l}`);
}

// Statistics.
const metrics = [
  ['POST -> 201 answer', r => r.t.answer],
  ['POST -> ICE connected', r => r.t.ice],
  ['POST -> DTLS connected', r => r.t.connected],
  ['POST -> first decoded frame', r => r.t.frame],
  ['ICE connected -> DTLS connected', r => r.t.connected != null && r.t.ice != null ? r.t.connected - r.t.ice : null],
  ['server: offer -> first valid pair', r => r.server?.validMs],
  ['server: offer -> ICE nominated', r => r.server?.nominatedMs],
  ['server: offer -> DTLS connected', r => r.server?.dtlsMs],
];
const summary = {};
const failed = results.filter(r => !r.ok);
console.log(`\n## ${CODEC}, ${results.length} sessions, ${failed.length} failed (statistics over the sessions that reached each point; p95 by nearest rank)`);
console.log('| metric (ms)                       |  n | min | p50 | p95 | max |');
console.log('| --------------------------------- | -: | --: | --: | --: | --: |');
for (const [name, get] of metrics) {
  const values = results.map(get);
  const s = stats(values);
  summary[name] = { ...s, raw: values.map(v => v ?? null) };
  console.log(`| ${name.padEnd(33)} | ${String(s.n).padStart(2)} | ${fmt(s.min).padStart(3)} | ${fmt(s.p50).padStart(3)} | ${fmt(s.p95).padStart(3)} | ${fmt(s.max).padStart(3)} |`);
}
console.log('\n## Raw lists (session order; - = not reached)');
for (const [name] of metrics) console.log(`# ${name}: ${summary[name].raw.map(fmt).join(', ')}`);
if (failed.length) console.log(`# failed sessions: ${failed.map(r => `${r.i} (${r.error})`).join('; ')}`);

if (process.env.BENCH_JSON) {
  writeFileSync(process.env.BENCH_JSON, JSON.stringify({
    date: new Date().toISOString(), codec: CODEC, n: N, timeoutMs: TIMEOUT_MS, reusePage: REUSE_PAGE,
    publisher: publisher && { ...publisher, server: pubSrv ? { validMs: pubSrv.validMs ?? null, nominatedMs: pubSrv.nominatedMs ?? null, dtlsMs: pubSrv.dtlsMs ?? null } : null },
    setupError: setupError || null, summary,
    sessions: results.map(({ i, id, ok, error, t, server, transport, pairs, inbound, events }) =>
      ({ i, id, ok, error: error || null, t, server, transport, pairs, inbound, events })),
  }, null, 2) + '\n');
  console.log(`# JSON written to ${process.env.BENCH_JSON}`);
}
process.exit(setupError || failed.length || results.length < N ? 1 : 0);
