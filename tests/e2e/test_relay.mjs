// Server-to-server relays between Estuary processes, with real clients at both ends (decoded
// media): Chromium publishes to A; WCS's POST /rest-api/pull/push sends it A -> B and Chromium
// plays it from B; POST /rest-api/pull/pull brings a stream of A into B (and B's RTMP output of
// it decodes in ffprobe); find_all lists both with their status; terminate stops one and A's
// resource is deleted; 409 for a duplicate, 404 for an unknown stream or relay, 400 for a bad
// body, 500 with the remote's reason when it refuses. A relay against a full-ICE server
// (aiortc, tests/e2e/whip_server.py) proves the controlling agent: push and pull there decode.
// A is stopped and started again: B's pull comes back by itself and B's player decodes again on
// its first session. /api/v1/relays shows state, bytes and reconnects. Static relays from the
// configuration start at start and follow SIGHUP.
// Usage: node test_relay.mjs BUILD_DIR
import { launchBrowser, reporter } from './lib/browser.mjs';
import { observeMedia, playAndTimeFirstFrame } from './lib/media.mjs';
import { decodeMedia, sleep, waitFor } from './lib/proc.mjs';
import { freePort, startServer, stopAll } from './lib/servers.mjs';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const [buildDir] = process.argv.slice(2);
const bin = `${buildDir}/estuary`;
const r = reporter();
const apps = `apps:
  live: {}
  locked:
    publish_token: "secret"`;

const A = await startServer(bin, 'A', apps);
const B = await startServer(bin, 'B', apps);
const sessionsOf = async (s) => (await s.json('/api/v1/sessions')).sessions;
const relayOf = async (s, id) => s.json(`/api/v1/relays/${id}`);
const browser = await launchBrowser();
const scratch = mkdtempSync(join(tmpdir(), 'estuary-relay-'));
let aiortc = null;

async function publishChromium(srv, stream) {
  const pub = await browser.context.newPage();
  await pub.goto(`${srv.base}/publish.html?app=live&stream=${stream}&codec=H264`);
  await pub.waitForFunction(() => typeof window.estuaryPublish === 'function');
  await pub.evaluate(() => window.estuaryPublish());
  await waitFor(`${stream} on ${srv.name}`, async () => {
    const s = await (await srv.api(`/api/v1/streams/live/${stream}`)).json();
    return s.packets_in > 50 && s.tracks?.length === 2 ? s : null;
  });
  return pub;
}

async function playChromium(srv, stream) {
  const page = await browser.context.newPage();
  await page.goto(`${srv.base}/play.html?app=live&stream=${stream}`);
  await page.waitForFunction(() => typeof window.estuaryPlay === 'function');
  await page.bringToFront();
  const ms = await playAndTimeFirstFrame(page, 15000).catch(e => { console.log(`# ${e.message}`); return -1; });
  return { page, ms };
}

const mediaOk = (m) => m.frames >= 15 && m.spread > 40 && m.changedSamples > 0 && m.audioSamples > 48000 && m.audioEnergy > 0;

try {
  // --- push A -> B (WCS REST), Chromium at both ends ---
  const pubA = await publishChromium(A, 'cam');
  let res = await A.post('/rest-api/pull/push', { uri: B.base, localStreamName: 'live/cam', remoteStreamName: 'live/cam-pushed' });
  let body = await res.json();
  r.check('push: POST /rest-api/pull/push answers 200 once B answered', res.status === 200 && body.localMediaSessionId?.length === 16, `${res.status} ${JSON.stringify(body)}`);
  const pushId = body.localMediaSessionId;
  await waitFor('B publishing live/cam-pushed', async () => {
    const s = await (await B.api('/api/v1/streams/live/cam-pushed')).json();
    return s.packets_in > 50 ? s : null;
  }, 15000).catch(() => null);
  const bStream = await (await B.api('/api/v1/streams/live/cam-pushed')).json();
  r.check('push: B has the stream with H264 and opus', bStream.tracks?.some(t => t.codec === 'H264') && bStream.tracks?.some(t => t.codec === 'opus'), JSON.stringify(bStream.tracks));
  const p1 = await playChromium(B, 'cam-pushed');
  const m1 = await observeMedia(p1.page);
  console.log(`# push: Chromium on B: WHEP POST to first frame ${p1.ms.toFixed(0)} ms`);
  r.check(`push: Chromium plays the pushed stream from B: frames, picture, audio (${m1.frames} frames)`, mediaOk(m1), JSON.stringify(m1));
  const pushInfo = await relayOf(A, pushId);
  r.check('push: /api/v1/relays/{id} shows it connected, with bytes out and the remote resource', pushInfo.state === 'connected' && pushInfo.session?.bytes_out > 100000 && /\/whip\/live\/cam-pushed\//.test(pushInfo.remote_resource) && pushInfo.remote_status === 201, JSON.stringify(pushInfo));
  const aSessions = await sessionsOf(A);
  r.check('push: A lists the relay session with signaling "relay"', aSessions.some(s => s.id === pushInfo.session_id && s.signaling === 'relay' && s.role === 'player'), JSON.stringify(aSessions.map(s => [s.id, s.signaling, s.role])));

  // --- pull A -> B ---
  res = await B.post('/rest-api/pull/pull', { uri: A.base, localStreamName: 'live/cam-pulled', remoteStreamName: 'live/cam' });
  body = await res.json();
  r.check('pull: POST /rest-api/pull/pull answers 200', res.status === 200 && body.localMediaSessionId, `${res.status} ${JSON.stringify(body)}`);
  const pullId = body.localMediaSessionId;
  const p2 = await playChromium(B, 'cam-pulled');
  const m2 = await observeMedia(p2.page);
  r.check(`pull: Chromium plays the pulled stream from B (${m2.frames} frames)`, mediaOk(m2), JSON.stringify(m2));
  const rtmpUrl = `rtmp://127.0.0.1:${B.rtmp}/live/cam-pulled`;
  const dec = await decodeMedia(rtmpUrl, 2, join(scratch, 'pull'));
  r.check(`pull: B's RTMP output of the pulled stream decodes (${dec.frames} frames, picture and tone)`, dec.frames >= 20 && dec.spread > 40 && dec.motion > 0 && dec.rms > 100, JSON.stringify(dec));

  // --- Estuary's own API, and a Bearer token for the remote ---
  res = await A.post('/api/v1/relays', { direction: 'push', stream: 'live/cam', url: `${B.base}/whip/locked/cam`, token: 'secret' });
  body = await res.json();
  r.check('/api/v1/relays: POST answers 201 with the relay and its Location', res.status === 201 && res.headers.get('location') === `/api/v1/relays/${body.id}` && body.direction === 'push' && body.origin === 'api', `${res.status} ${JSON.stringify(body)}`);
  const tokId = body.id;
  const tokStream = await waitFor('B publishing locked/cam', async () => {
    const s = await (await B.api('/api/v1/streams/locked/cam')).json();
    return s.packets_in > 50 ? s : null;
  }, 15000).catch(() => null);
  r.check('/api/v1/relays: the push with token "secret" publishes to B\'s app locked (publish_token)', !!tokStream);
  const listed = (await A.json('/api/v1/relays')).relays.find(x => x.id === tokId);
  r.check('/api/v1/relays: GET lists it connected with the remote\'s answer and bytes', listed?.state === 'connected' && listed.remote_status === 201 && listed.session?.bytes_out > 0 && listed.reconnects === 0, JSON.stringify(listed));
  res = await A.api(`/api/v1/relays/${tokId}`, { method: 'DELETE' });
  const lockedGone = await waitFor('locked/cam gone from B', async () => ((await B.api('/api/v1/streams/locked/cam')).status === 404) || null, 5000).catch(() => false);
  r.check('/api/v1/relays/{id}: DELETE stops it and B\'s stream ends', res.status === 200 && lockedGone && (await A.api(`/api/v1/relays/${tokId}`)).status === 404, `${res.status}`);
  res = await A.post('/api/v1/relays', { direction: 'sideways', stream: 'live/cam', url: B.base });
  r.check('/api/v1/relays: a bad direction is a 400', res.status === 400, `${res.status}`);

  // --- find_all, duplicates, errors ---
  const all = await (await B.post('/rest-api/pull/find_all', {})).json();
  const mine = all.find(x => x.localMediaSessionId === pullId);
  r.check('find_all lists the pull with its fields and status PLAYING', mine && mine.status === 'PLAYING' && mine.localStreamName === 'live/cam-pulled' && mine.remoteStreamName === 'live/cam' && mine.uri === A.base && mine.remoteMediaSessionId?.length > 16, JSON.stringify(all));
  const allA = await (await A.post('/rest-api/pull/find_all', {})).json();
  r.check('find_all on A lists the push with status PUBLISHING', allA.some(x => x.localMediaSessionId === pushId && x.status === 'PUBLISHING'), JSON.stringify(allA));
  res = await A.post('/rest-api/pull/push', { uri: B.base, localStreamName: 'live/cam', remoteStreamName: 'live/cam-pushed' });
  r.check('a duplicate push: 409', res.status === 409, `${res.status}`);
  res = await A.post('/rest-api/pull/push', { uri: B.base, localStreamName: 'live/nothing', remoteStreamName: 'live/x' });
  r.check('a push of an unknown local stream: 404', res.status === 404, `${res.status}`);
  res = await A.post('/rest-api/pull/terminate', { localMediaSessionId: '0123456789abcdef' });
  r.check('terminate of an unknown relay: 404', res.status === 404, `${res.status}`);
  res = await A.api('/rest-api/pull/push', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"uri": 5' });
  r.check('a bad body: 400 with the reason', res.status === 400 && /JSON/.test((await res.json()).error), `${res.status}`);
  res = await A.post('/rest-api/pull/push', { uri: B.base, localStreamName: 'live/cam', remoteStreamName: 'locked/x' });
  body = await res.json();
  r.check('B refuses (no token for app locked): 500 with B\'s reason, and the relay is not kept', res.status === 500 && /token/.test(body.error) && !(await (await A.post('/rest-api/pull/find_all', {})).json()).some(x => x.remoteStreamName === 'locked/x'), `${res.status} ${JSON.stringify(body)}`);
  res = await B.post('/rest-api/pull/pull', { uri: A.base, localStreamName: 'live/nope', remoteStreamName: 'live/nope' });
  body = await res.json();
  r.check('a pull of a stream A does not have: 500 with A\'s reason (404 not published)', res.status === 500 && /404|not being published/.test(body.error), `${res.status} ${JSON.stringify(body)}`);

  // --- terminate deletes the remote resource ---
  const beforeB = (await sessionsOf(B)).filter(s => s.stream === 'cam-pushed' && s.role === 'publisher').length;
  res = await A.post('/rest-api/pull/terminate', { localMediaSessionId: pushId });
  r.check('terminate: 200', res.status === 200, `${res.status}`);
  const goneOnB = await waitFor('the pushed publisher gone from B', async () => {
    const n = (await sessionsOf(B)).filter(s => s.stream === 'cam-pushed' && s.role === 'publisher').length;
    return n === 0 ? true : null;
  }, 3000).catch(() => false);
  // The DTLS close_notify usually ends B's session before the DELETE arrives (then a 404).
  await sleep(300);
  r.check('terminate: B\'s publisher session ends at once and the resource is DELETEd', beforeB === 1 && goneOnB && /DELETE \/whip\/live\/cam-pushed\/[0-9a-f]{16}-\.\.\. -> (200|404)/.test(B.logText()), `before ${beforeB}`);
  await p1.page.close();

  // --- reconnect: A restarts, B's pull comes back and B's player decodes again ---
  const before = await relayOf(B, pullId);
  await A.stop();
  A.exits[A.exits.length - 1].expectedKill = true;
  await sleep(1500);
  await A.start();
  const pubA2 = await publishChromium(A, 'cam');
  const back = await waitFor('the pull connected again', async () => {
    const x = await relayOf(B, pullId);
    return x.state === 'connected' && x.reconnects > before.reconnects ? x : null;
  }, 20000).catch(() => null);
  r.check('reconnect: after A\'s restart B\'s pull connects again by itself', !!back, JSON.stringify(await relayOf(B, pullId)));
  const m3 = await observeMedia(p2.page, 3000);
  r.check(`reconnect: B's player decodes again on its first session (${m3.frames} frames)`, m3.frames >= 15 && m3.changedSamples > 0, JSON.stringify(m3));
  await pubA.close().catch(() => {});

  // --- a full-ICE (aiortc) WHIP/WHEP server: our agent controls and nominates ---
  const aport = await freePort();
  const here = fileURLToPath(new URL('.', import.meta.url));
  aiortc = spawn('/usr/bin/python3', [`${here}whip_server.py`, '--port', String(aport)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let aerr = '';
  aiortc.stderr.on('data', d => { aerr += d; });
  const abase = `http://127.0.0.1:${aport}`;
  await waitFor('the aiortc server', async () => { try { return (await fetch(`${abase}/stats`)).ok; } catch { return null; } }, 10000);
  res = await A.post('/rest-api/pull/push', { uri: `${abase}/whip/live/full`, localStreamName: 'live/cam' });
  body = await res.json();
  r.check('full ICE: push to the aiortc WHIP server answers 200', res.status === 200, `${res.status} ${JSON.stringify(body)} ${aerr.slice(-500)}`);
  const stats = await waitFor('aiortc decoding', async () => {
    const s = await (await fetch(`${abase}/stats`)).json();
    const st = s.streams?.['live/full'];
    return st && st.video_frames >= 30 && st.audio_frames >= 30 ? s : null;
  }, 20000).catch(() => null);
  r.check('full ICE: aiortc decodes the pushed video and audio, as the controlled agent', stats && stats.ice_role === 'controlled', JSON.stringify(stats) + aerr.slice(-800));
  res = await B.post('/rest-api/pull/pull', { uri: `${abase}/whep/live/full`, localStreamName: 'live/from-aiortc' });
  r.check('full ICE: pull from the aiortc WHEP server answers 200', res.status === 200, `${res.status}`);
  // B's RTMP output exists once the WebRTC -> FLV bridge has the stream's codecs and a key frame
  // (aiortc encodes the stream again, slowly on a loaded machine): wait for that, not just for
  // packets.
  const fromAiortc = await waitFor('B receiving from aiortc, its FLV output ready', async () => {
    const s = await (await B.api('/api/v1/streams/live/from-aiortc')).json();
    return s.packets_in > 100 && s.flv?.video_codec === 'H264' && s.flv?.gop_tags > 0 ? s : null;
  }, 30000).catch(() => null);
  const decA = await decodeMedia(`rtmp://127.0.0.1:${B.rtmp}/live/from-aiortc`, 2, join(scratch, 'aiortc'));
  const why = decA.frames >= 10 ? '' : ` B's stream: ${JSON.stringify(await (await B.api('/api/v1/streams/live/from-aiortc')).json().catch(() => null))}; ` +
    `relays: ${JSON.stringify(await B.json('/api/v1/relays').catch(() => null))}; ` +
    `aiortc: ${JSON.stringify(await (await fetch(`${abase}/stats`)).json().catch(() => null))}`;
  r.check(`full ICE: the stream pulled from aiortc decodes from B's RTMP output (${decA.frames} frames)`, !!fromAiortc && decA.frames >= 10 && decA.spread > 40, JSON.stringify(decA) + why);

  // --- static relays and SIGHUP ---
  await B.reload(`${apps}
relays:
  - direction: pull
    stream: live/static
    url: ${A.base}/whep/live/cam`);
  const st = await waitFor('the static relay', async () => {
    const list = (await B.json('/api/v1/relays')).relays;
    return list.find(x => x.origin === 'config' && x.stream === 'live/static' && x.state === 'connected') || null;
  }, 15000).catch(() => null);
  r.check('SIGHUP: a relay added to relays: starts and connects', !!st, JSON.stringify((await B.json('/api/v1/relays')).relays.map(x => [x.origin, x.stream, x.state, x.last_error])));
  await B.reload(apps);
  const gone = (await B.json('/api/v1/relays')).relays.filter(x => x.origin === 'config');
  r.check('SIGHUP: a relay removed from relays: stops', gone.length === 0, JSON.stringify(gone));
  await pubA2.close().catch(() => {});
} catch (e) {
  r.check('no exception', false, e.stack);
} finally {
  if (aiortc) aiortc.kill('SIGTERM');
  await browser.close();
  rmSync(scratch, { recursive: true, force: true });
  const problems = await stopAll();
  r.check('every server exits cleanly without a sanitizer report', problems.length === 0, problems.join('; '));
}
process.exit(r.done());
