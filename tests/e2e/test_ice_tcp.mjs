// WebRTC over TCP, asserting on decoded media. With UDP to and from the server's port dropped
// (nftables, or iptables): Chromium publishes and another Chromium plays over the ICE-TCP port;
// then with that port dropped too, over the HTTP port alone; Firefox plays over TCP; the API shows
// transport "tcp" and the pair's local port, and the session timeline. With UDP open again: a
// Chromium player forced onto TCP (its page drops the answer's UDP candidates) is frozen with
// SIGSTOP while a UDP player of the same stream keeps decoding, and the server drops the TCP
// player's media rather than queue it. Finally raw sockets: a connection that never
// authenticates is closed, as are one whose first frame names no session and one with an
// oversize frame, on both ports, and HTTP on the shared port still answers.
// Usage: node test_ice_tcp.mjs BASE UDP_PORT TCP_PORT HTTP_PORT SERVER_LOG
import { launchBrowser, reporter } from './lib/browser.mjs';
import { firewall } from './lib/firewall.mjs';
import { launchFirefox } from './lib/firefox.mjs';
import { playAndTimeFirstFrame, observeMedia } from './lib/media.mjs';
import { waitFor, sleep, run } from './lib/proc.mjs';
import { execFileSync } from 'node:child_process';
import net from 'node:net';

const [base, udpPort, tcpPort, httpPort] = process.argv.slice(2);
const r = reporter();
const api = async (path) => (await fetch(base + path)).json();
const sessions = async () => (await api('/api/v1/sessions')).sessions.filter(s => s.protocol === 'webrtc');
const note = (m) => console.log(`# ${m}`);

const fw = firewall;
const BLOCK_UDP = [`udp dport ${udpPort}`, `udp sport ${udpPort}`];
const BLOCK_ICE_TCP = [`tcp dport ${tcpPort}`, `tcp sport ${tcpPort}`];

async function publish(page, stream, codec = 'H264') {
  await page.goto(`${base}/publish.html?app=live&stream=${stream}${codec ? `&codec=${codec}` : ''}`);
  await page.waitForFunction(() => typeof window.estuaryPublish === 'function');
  return page.evaluate(async () => { try { return { resource: await window.estuaryPublish() }; } catch (e) { return { error: String(e) }; } });
}

async function sessionOf(stream, role, pred = () => true) {
  return waitFor(`the ${role} session of ${stream}`, async () =>
    (await sessions()).find(s => s.stream === stream && s.role === role && s.state === 'connected' && pred(s)) || null, 15000).catch(() => null);
}

// moving: the source's picture changes within 2.5 s (Chromium's fake camera; Firefox's is one
// colour cycling slowly through hues with a timestamp bar: detail, but little change).
async function playAndCheck(label, page, stream, port, moving = true) {
  await page.goto(`${base}/play.html?app=live&stream=${stream}`);
  await page.waitForFunction(() => typeof window.estuaryPlay === 'function');
  let ms = -1, err = '';
  try { ms = await playAndTimeFirstFrame(page, 15000); } catch (e) { err = e.message; }
  r.check(`${label}: decodes a first frame`, ms >= 0, err);
  if (ms >= 0) note(`${label}: first decoded frame ${ms.toFixed(0)} ms after the WHEP POST`);
  const m = await observeMedia(page);
  r.check(`${label}: decodes ${moving ? 'moving ' : ''}frames with audio (${m.frames} frames in 2.5 s)`,
    m.frames >= 15 && m.spread > 40 && (!moving || m.changedSamples > 0) && m.audioSamples > 24000, JSON.stringify(m));
  const ports = [].concat(port); // with both TCP candidates reachable a browser may nominate either
  const s = await sessionOf(stream, 'player', x => ports.some(p => x.pair?.local?.endsWith(`:${p}`)));
  r.check(`${label}: the API shows the player on tcp to port ${ports.join(' or ')}`, s?.transport === 'tcp', JSON.stringify(s?.pair));
  return s;
}

const chromium = await launchBrowser();
const chromium2 = await launchBrowser();
let firefox = null;
try { firefox = await launchFirefox(); } catch (e) { r.check('Firefox starts', false, e.message); }

// Firefox publishes its fake camera (VP8) with the candidates allowed now; Chromium plays it.
async function firefoxPublishes(label, stream, port) {
  if (!firefox) return;
  const fpub = await firefox.newPage();
  const res = await publish(fpub, stream, '');
  r.check(`${label}: Firefox's WHIP publish answers`, !!res.resource, res.error);
  const s = await sessionOf(stream, 'publisher');
  const ports = [].concat(port);
  r.check(`${label}: Firefox publishes on tcp to port ${ports.join(' or ')}`, s?.transport === 'tcp' && ports.some(p => s.pair.local.endsWith(`:${p}`)), JSON.stringify(s?.pair));
  const cp = await chromium2.context.newPage();
  await playAndCheck(`${label}: Chromium playing Firefox`, cp, stream, port, false);
  await cp.close();
  await fpub.close();
}
try {
  // 1. UDP dropped: publish and play over the ICE-TCP port.
  fw(BLOCK_UDP);
  const pub = await chromium.context.newPage();
  const res = await publish(pub, 'tcp-cam');
  r.check('UDP blocked: WHIP publish answers', !!res.resource, res.error);
  const ps = await sessionOf('tcp-cam', 'publisher');
  r.check('UDP blocked: the publisher is connected on tcp to the ICE-TCP port', ps?.transport === 'tcp' && ps.pair.local.endsWith(`:${tcpPort}`), JSON.stringify(ps?.pair));
  const answerSdp = await pub.evaluate(() => window.estuarySession?.pc.remoteDescription?.sdp || '');
  const cands = answerSdp.split('\r\n').filter(l => l.startsWith('a=candidate:'));
  r.check('the answer offers a UDP candidate and TCP passive candidates on both ports, UDP first',
    /udp \d+ 192\.0\.2\.1 /.test(cands[0] || '') && cands.some(l => l.includes(` ${tcpPort} typ host tcptype passive`)) &&
    cands.some(l => l.includes(` ${httpPort} typ host tcptype passive`)), cands.join(' | '));
  const prio = (l) => Number(l.split(' ')[3]);
  r.check('TCP candidates have a lower priority than UDP', cands.filter(l => / tcp /.test(l)).every(l => prio(l) < prio(cands[0])), cands.join(' | '));
  const self = await fetch(base + new URL(res.resource, base).pathname).then(x => x.json()).catch(() => null);
  const events = (self?.timeline || []).map(e => e.event);
  r.check('GET on the WHIP resource shows the session timeline (signaling, tcp check, DTLS, first RTP in)',
    events.some(e => e.startsWith('signaling from')) && events.some(e => /check from .*\(tcp\): pair valid/.test(e)) &&
    events.includes('DTLS connected') && events.includes('first RTP in'), JSON.stringify(events));
  const p1 = await chromium2.context.newPage();
  await playAndCheck('UDP blocked: Chromium player', p1, 'tcp-cam', [tcpPort, httpPort]);
  await firefoxPublishes('UDP blocked', 'ff-tcp', [tcpPort, httpPort]);

  // 2. Only the HTTP port: the ICE-TCP port dropped too.
  fw([...BLOCK_UDP, ...BLOCK_ICE_TCP]);
  const pub2 = await chromium.context.newPage();
  const res2 = await publish(pub2, 'http-cam');
  r.check('only the HTTP port: WHIP publish answers', !!res2.resource, res2.error);
  const ps2 = await sessionOf('http-cam', 'publisher');
  r.check('only the HTTP port: the publisher is connected on tcp to the HTTP port', ps2?.transport === 'tcp' && ps2.pair.local.endsWith(`:${httpPort}`), JSON.stringify(ps2?.pair));
  const p2 = await chromium2.context.newPage();
  await playAndCheck('only the HTTP port: Chromium player', p2, 'http-cam', httpPort);
  const api1 = await fetch(base + '/api/v1/version').then(x => x.ok).catch(() => false);
  r.check('only the HTTP port: HTTP on the shared port still answers', api1);
  await firefoxPublishes('only the HTTP port', 'ff-http', httpPort);
  if (firefox) {
    const fp = await firefox.newPage();
    await playAndCheck('only the HTTP port: Firefox player', fp, 'http-cam', httpPort);
    await fp.close().catch(() => {});
  }

  // 3. Firefox plays over TCP (UDP dropped, the ICE-TCP port open).
  fw(BLOCK_UDP);
  if (firefox) {
    const fp = await firefox.newPage();
    await playAndCheck('UDP blocked: Firefox player', fp, 'tcp-cam', [tcpPort, httpPort]);
    await fp.close().catch(() => {});
  }
  await p1.close(); await p2.close(); await pub2.close();

  // 4. A TCP player frozen while a UDP player of the same stream plays on.
  fw([]);
  const udpPlayer = await chromium.context.newPage();
  await udpPlayer.goto(`${base}/play.html?app=live&stream=tcp-cam`);
  await udpPlayer.waitForFunction(() => typeof window.estuaryPlay === 'function');
  await playAndTimeFirstFrame(udpPlayer, 15000).catch(e => r.check('UDP player decodes', false, e.message));
  const us = await sessionOf('tcp-cam', 'player', x => x.transport === 'udp');
  r.check('the second player is on udp', !!us, JSON.stringify((await sessions()).map(s => [s.role, s.transport])));
  const tp = await chromium2.context.newPage();
  await tp.goto(`${base}/play.html?app=live&stream=none`);
  const forced = await tp.evaluate(async (stream) => {
    const pc = new RTCPeerConnection();
    pc.addTransceiver('video', { direction: 'recvonly' });
    pc.addTransceiver('audio', { direction: 'recvonly' });
    const v = document.getElementById('video');
    pc.ontrack = (e) => { v.srcObject = e.streams[0]; v.play().catch(() => {}); };
    await pc.setLocalDescription(await pc.createOffer());
    const a = await fetch(`/whep/live/${stream}`, { method: 'POST', headers: { 'Content-Type': 'application/sdp' }, body: pc.localDescription.sdp });
    const sdp = (await a.text()).split('\r\n').filter(l => !/^a=candidate:\S+ \d+ udp /i.test(l)).join('\r\n');
    await pc.setRemoteDescription({ type: 'answer', sdp });
    window.estuarySession = { pc };
    return a.status;
  }, 'tcp-cam');
  r.check('a player forced onto TCP (its page drops the answer\'s UDP candidates) gets an answer', forced === 201, String(forced));
  const ts = await sessionOf('tcp-cam', 'player', x => x.transport === 'tcp');
  r.check('the forced player is connected on tcp', !!ts);
  await tp.bringToFront();
  await tp.waitForFunction(() => document.getElementById('video').videoWidth > 0, null, { timeout: 15000 })
    .catch(() => r.check('the TCP player decodes a first frame', false, 'no frame in 15 s'));
  const tm = await observeMedia(tp, 2000);
  r.check(`the TCP player decodes before it is frozen (${tm.frames} frames)`, tm.frames >= 10, JSON.stringify(tm));
  await udpPlayer.bringToFront();
  const pids = execFileSync('pgrep', ['-f', chromium2.profile]).toString().trim().split('\n').filter(Boolean);
  const bytes0 = (await sessions()).find(s => s.id === ts?.id)?.bytes_out || 0;
  for (const p of pids) try { process.kill(Number(p), 'SIGSTOP'); } catch {}
  let frozen;
  try {
    await sleep(2000);
    frozen = await observeMedia(udpPlayer, 8000);
  } finally {
    for (const p of pids) try { process.kill(Number(p), 'SIGCONT'); } catch {}
  }
  r.check(`the UDP player decodes on while the TCP player is frozen (${frozen.fps.toFixed(1)} fps over 8 s)`, frozen.fps >= 15 && frozen.changedSamples > 0, JSON.stringify(frozen));
  const after = (await sessions()).find(s => s.id === ts?.id) || (ts && await api(`/api/v1/sessions/${ts.id}`));
  note(`frozen TCP player: ${JSON.stringify({ state: after?.state, bytes_out: after?.bytes_out - bytes0, tcp_media_dropped: after?.tcp_media_dropped, ended: after?.ended_reason })}`);
  r.check('the server dropped the frozen TCP player\'s media instead of queueing it', (after?.tcp_media_dropped || 0) > 0 || /send queue/.test(after?.ended_reason || ''), JSON.stringify(after));
  await tp.bringToFront();
  await sleep(3000); // the queue drains; the player's next key frame comes on a PLI
  const thawed = await observeMedia(tp, 3000);
  r.check(`the TCP player decodes again once it reads again (${thawed.frames} frames in 3 s)`, thawed.frames >= 15 && thawed.changedSamples > 0, JSON.stringify(thawed));
  await tp.close().catch(() => {});
  await udpPlayer.close();
  await pub.close();

  // 5. Raw sockets.
  const probe = (port, bytes, waitMs) => new Promise((resolve) => {
    const t0 = Date.now();
    const c = net.connect({ host: '192.0.2.1', port: Number(port) }, () => { if (bytes) c.write(bytes); });
    let got = '';
    c.on('data', d => { got += d.toString('latin1'); });
    const done = (how) => { clearTimeout(to); c.destroy(); resolve({ how, ms: Date.now() - t0, got }); };
    c.on('close', () => done('closed'));
    c.on('error', () => done('closed')); /* a reset: closed with bytes unread */
    const to = setTimeout(() => done('open'), waitMs);
  });
  const silent = await probe(tcpPort, null, 9000);
  r.check(`an ICE-TCP connection that never authenticates is closed (${silent.how} after ${silent.ms} ms)`, silent.how === 'closed' && silent.ms >= 4000 && silent.ms < 8000, JSON.stringify(silent));
  const stun = Buffer.alloc(22);
  stun.writeUInt16BE(20, 0); stun.writeUInt16BE(1, 2); stun.writeUInt16BE(0, 4); stun.writeUInt32BE(0x2112A442, 6);
  const unnamed = await probe(tcpPort, stun, 3000);
  r.check(`a first frame naming no session is closed at once (${unnamed.ms} ms)`, unnamed.how === 'closed' && unnamed.ms < 1000, JSON.stringify(unnamed));
  const big = Buffer.from([0x10, 0x00, 0, 1, 0, 0, 0x21, 0x12, 0xA4, 0x42]);
  const oversize = await probe(tcpPort, big, 3000);
  r.check(`a frame over 1500 bytes is closed at once (${oversize.ms} ms)`, oversize.how === 'closed' && oversize.ms < 1000, JSON.stringify(oversize));
  const junk = await probe(httpPort, Buffer.from([0x00, 0x05, 0xff, 0xff]), 3000);
  r.check(`the HTTP port closes bytes that are neither HTTP, TLS nor framed STUN (${junk.ms} ms)`, junk.how === 'closed' && junk.ms < 1000, JSON.stringify(junk));
  const unnamedHttp = await probe(httpPort, stun, 3000);
  r.check(`the HTTP port closes framed STUN naming no session (${unnamedHttp.ms} ms)`, unnamedHttp.how === 'closed' && unnamedHttp.ms < 1000, JSON.stringify(unnamedHttp));
  const http = await probe(httpPort, 'GET /api/v1/version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 3000);
  r.check('HTTP on the shared port answers a request', /^HTTP\/1\.1 200/.test(http.got) && http.got.includes('"estuary"'), http.got.slice(0, 80));
} catch (e) {
  r.check('the test ran to the end', false, e.stack);
} finally {
  fw([]);
  await firefox?.close();
  await chromium.close();
  await chromium2.close();
}
process.exit(r.done());
