// Origin, edges and a 307 balancer, four Estuary processes in one namespace: ffmpeg publishes
// RTMP to the origin A; C is an edge of A (apps.live.origin), D an edge of C (a chain), E a
// balancer of app live over C and D. Three players of different protocols on C (two aiortc WHEP
// players and an HTTP-FLV ffmpeg) make one upstream session at A, and C's pull stops
// origin_idle_ms after the last one left; a WHEP player on D decodes through D -> C -> A; WHEP
// players sent to E are redirected (307) to C and D both, and every one decodes.
// Usage: node test_edge.mjs BUILD_DIR
import { launchBrowser, reporter } from './lib/browser.mjs';
import { observeMedia, playAndTimeFirstFrame } from './lib/media.mjs';
import { ffmpegPublish, rtcPeer } from './lib/clients.mjs';
import { decodeMedia, sleep, waitFor } from './lib/proc.mjs';
import { freePort, startServer, stopAll } from './lib/servers.mjs';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [buildDir] = process.argv.slice(2);
const bin = `${buildDir}/estuary`;
const r = reporter();
const scratch = mkdtempSync(join(tmpdir(), 'estuary-edge-'));
const procs = [];

// C asks an on_play hook (allow, except stream "secret"): an edge pulls only for players the
// hook admitted.
const hookPort = await freePort();
const hookLog = join(scratch, 'hooks.log');
const hook = spawn('/usr/bin/python3', [fileURLToPath(new URL('hook_server.py', import.meta.url)),
  '--port', String(hookPort), '--log', hookLog, '--rule', 'on_play:*:secret=refuse:not for you'], { stdio: 'ignore' });
procs.push(hook);
await waitFor('the hook server', async () => { try { await fetch(`http://127.0.0.1:${hookPort}/`); return true; } catch { return null; } }, 10000);
const A = await startServer(bin, 'A', 'apps:\n  live: {}');
const C = await startServer(bin, 'C', `apps:\n  live:\n    origin: "${A.base}"\n    origin_idle_ms: 2000\n    on_play: "http://127.0.0.1:${hookPort}/play"`);
const D = await startServer(bin, 'D', `apps:\n  live:\n    origin: "${C.base}"\n    origin_idle_ms: 2000`);
const E = await startServer(bin, 'E', `apps:\n  live:\n    balancer: ["${C.base}", "${D.base}"]`);
const sessionsOf = async (s) => (await s.json('/api/v1/sessions')).sessions;
const upstreamAt = async (s, stream) => (await sessionsOf(s)).filter(x => x.stream === stream && x.role === 'player' && x.signaling === 'whep');

try {
  const pub = ffmpegPublish(`rtmp://127.0.0.1:${A.rtmp}/live/cam`, 60);
  procs.push(pub.proc);
  await waitFor('A receiving live/cam over RTMP', async () => {
    const s = await (await A.api('/api/v1/streams/live/cam')).json();
    return s.source === 'rtmp' && s.packets_in > 30 ? s : null;
  }, 15000);

  // Three players on the edge C: two WHEP (aiortc), one HTTP-FLV (ffmpeg).
  const p1 = rtcPeer(['play', `${C.base}/whep/live/cam`, '5', '--delete']);
  const p2 = rtcPeer(['play', `${C.base}/whep/live/cam`, '5', '--delete']);
  procs.push(p1.proc, p2.proc);
  const flv = decodeMedia(`${C.base}/live/cam.flv`, 4, join(scratch, 'flv'));
  const a1 = await p1.next(['answered', 'refused'], 20000);
  const a2 = await p2.next(['answered', 'refused'], 20000);
  r.check('edge: WHEP players of a stream the edge does not have are answered once its pull runs', a1?.status === 201 && a2?.status === 201, JSON.stringify([a1, a2]));
  await sleep(1500);
  const up = await upstreamAt(A, 'cam');
  r.check(`edge: one upstream session at the origin for three players on the edge (${up.length})`, up.length === 1, JSON.stringify(up.map(x => [x.id, x.signaling, x.http_remote])));
  const relaysC = (await C.json('/api/v1/relays')).relays;
  r.check('edge: C lists its pull as an edge relay, connected', relaysC.length === 1 && relaysC[0].origin === 'edge' && relaysC[0].state === 'connected', JSON.stringify(relaysC));
  const [d1, d2, df] = await Promise.all([p1.next('done', 30000), p2.next('done', 30000), flv]);
  r.check(`edge: both WHEP players decode (${d1?.video_frames}, ${d2?.video_frames} frames)`, d1?.video_frames > 30 && d2?.video_frames > 30, JSON.stringify([d1, d2]));
  r.check(`edge: the HTTP-FLV player decodes picture and tone (${df.frames} frames)`, df.frames >= 20 && df.spread > 40 && df.rms > 100, JSON.stringify(df));
  const stopped = await waitFor('the edge pull to stop', async () => {
    const n = (await C.json('/api/v1/relays')).relays.length + (await upstreamAt(A, 'cam')).length;
    return n === 0 ? true : null;
  }, 8000).catch(() => false);
  r.check('edge: the pull stops origin_idle_ms after the last player left, at both ends', stopped, JSON.stringify((await C.json('/api/v1/relays')).relays));

  // A player the hook refuses makes no pull: 403, and neither C nor A sees a relay for it.
  const ps = rtcPeer(['play', `${C.base}/whep/live/secret`, '1']);
  procs.push(ps.proc);
  const as = await ps.next(['answered', 'refused'], 20000);
  await sleep(500);
  const hooked = readFileSync(hookLog, 'utf8').split('\n').filter(Boolean).map(l => JSON.parse(l));
  r.check('edge: a player the on_play hook refuses gets 403 and starts no pull', as?.status === 403 && /not for you/.test(as.body) && (await C.json('/api/v1/relays')).relays.length === 0 && !/live\/secret/.test(A.logText()), JSON.stringify(as));
  r.check('edge: the hook was asked for every player before its pull (cam allowed, secret refused)', hooked.some(h => h.stream === 'cam' && h._answer === 'allow') && hooked.some(h => h.stream === 'secret' && h._answer === 'refuse'), JSON.stringify(hooked.map(h => [h.stream, h.protocol, h._answer])));

  // A chain: D is an edge of C, itself an edge of A.
  const p3 = rtcPeer(['play', `${D.base}/whep/live/cam`, '4', '--delete']);
  procs.push(p3.proc);
  const a3 = await p3.next(['answered', 'refused'], 20000);
  const d3 = await p3.next('done', 30000);
  r.check(`chain: a player on D (edge of C, edge of A) decodes (${d3?.video_frames} frames)`, a3?.status === 201 && d3?.video_frames > 30, JSON.stringify([a3, d3]));

  // A WebSocket player of the edge waits for the pull too: the server's offer carries the
  // origin's codecs.
  const ws = new WebSocket(`${D.base.replace('http', 'ws')}/live/cam/webrtc`);
  const offer = await new Promise((res) => {
    const t = setTimeout(() => res(null), 10000);
    ws.onmessage = (e) => { const m = JSON.parse(e.data); if (m.type === 'offer' || m.type === 'error') { clearTimeout(t); res(m); } };
    ws.onerror = () => { clearTimeout(t); res(null); };
  });
  ws.close();
  r.check('edge: a WebSocket player of the edge gets the server\'s offer with the origin\'s H264 and opus', offer?.type === 'offer' && /H264/.test(offer.sdp) && /opus/.test(offer.sdp), JSON.stringify(offer).slice(0, 300));

  // The balancer: WHEP players sent to E are spread over C and D by 307.
  await waitFor('E to hear from both members', async () => {
    const m = (await E.json('/api/v1/load')).balancer_members;
    return m.length === 2 && m.every(x => x.alive) ? m : null;
  }, 8000);
  const players = [];
  for (let i = 0; i < 4; i++) {
    const p = rtcPeer(['play', `${E.base}/whep/live/cam`, '4', '--delete']);
    procs.push(p.proc);
    players.push(p);
    await sleep(200);
  }
  const answered = await Promise.all(players.map(p => p.next(['answered', 'refused'], 20000)));
  const done = await Promise.all(players.map(p => p.next('done', 30000)));
  const toC = answered.filter(a => a?.location?.startsWith(C.base)).length;
  const toD = answered.filter(a => a?.location?.startsWith(D.base)).length;
  r.check(`balancer: 307 spreads the players over both members (${toC} to C, ${toD} to D)`, toC >= 1 && toD >= 1 && toC + toD === 4, JSON.stringify(answered));
  r.check(`balancer: every redirected player decodes (${done.map(d => d?.video_frames).join(', ')} frames)`, done.every(d => d?.video_frames > 20), JSON.stringify(done));
  // Chromium's play page on the balancer: the SDK's WHEP POST follows the 307 to a member
  // (another origin: CORS) and the page decodes.
  const browser = await launchBrowser();
  try {
    const page = await browser.context.newPage();
    await page.goto(`${E.base}/play.html?app=live&stream=cam`);
    await page.waitForFunction(() => typeof window.estuaryPlay === 'function');
    const ms = await playAndTimeFirstFrame(page, 15000).catch(e => { console.log(`# ${e.message}`); return -1; });
    const m = ms >= 0 ? await observeMedia(page) : {};
    r.check(`balancer: Chromium's play page on E follows the 307 and decodes (${m.frames} frames, first after ${ms.toFixed(0)} ms)`, ms >= 0 && m.frames >= 15 && m.changedSamples > 0, JSON.stringify(m));
  } finally {
    await browser.close();
  }
  // A relay follows the balancer's 307 too: A pulls live/cam back through E (from C or D).
  let res = await A.post('/api/v1/relays', { direction: 'pull', stream: 'live/via-balancer', url: `${E.base}/whep/live/cam` });
  const rid = (await res.json()).id;
  const via = await waitFor('the pull through the balancer', async () => {
    const x = await A.json(`/api/v1/relays/${rid}`);
    return x.state === 'connected' ? x : null;
  }, 15000).catch(() => null);
  r.check('balancer: a relay\'s WHEP POST follows the 307 to a member', !!via && (via.remote_resource.startsWith(C.base) || via.remote_resource.startsWith(D.base)), JSON.stringify(via));
  await A.api(`/api/v1/relays/${rid}`, { method: 'DELETE' });
  r.check('balancer: E logged its redirects (four players, the page and the relay)', (E.logText().match(/balancer of app live: WHEP redirected to/g) || []).length === 6);
} catch (e) {
  r.check('no exception', false, e.stack);
} finally {
  for (const p of procs) { try { (p.proc || p).kill('SIGTERM'); } catch { /* gone */ } }
  await sleep(300);
  rmSync(scratch, { recursive: true, force: true });
  const problems = await stopAll();
  r.check('every server exits cleanly without a sanitizer report', problems.length === 0, problems.join('; '));
}
process.exit(r.done());
