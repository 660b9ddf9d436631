// WebSocket signaling (docs/websocket.md) driven by a plain client: Node's WebSocket (run with
// --experimental-websocket) and SDP from tests/unit/sdp (Chromium's WHIP and WHEP offers), so
// that the server's side of the protocol is checked message by message, without a browser's
// retries hiding anything. No media flows (no ICE): sessions stay "new", which is enough for
// signaling, admission, events and limits. Usage: node test_ws_protocol.mjs BASE_URL
import { reporter } from './lib/browser.mjs';
import { sleep } from './lib/proc.mjs';
import { readFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { connect } from 'node:net';

const [base] = process.argv.slice(2);
const ws = base.replace(/^http/, 'ws');
const r = reporter();
const sdpDir = new URL('../unit/sdp/', import.meta.url);
const WHIP_OFFER = readFileSync(new URL('chromium_whip_sendonly.sdp', sdpDir), 'utf8');
const WHEP_OFFER = readFileSync(new URL('chromium_whep_recvonly.sdp', sdpDir), 'utf8');
const sessions = async () => (await (await fetch(`${base}/api/v1/sessions`)).json()).sessions;

// A socket with its messages in order and its close event; next(pred, ms) waits for a message.
function open(path) {
  const s = new WebSocket(ws + path);
  const c = { s, msgs: [], closed: null, waiters: [] };
  s.onmessage = (e) => {
    const m = JSON.parse(e.data);
    c.msgs.push(m);
    c.waiters = c.waiters.filter(w => !(w.pred(m) && (w.res(m), true)));
  };
  s.onclose = (e) => { c.closed = { code: e.code, reason: e.reason }; c.waiters.forEach(w => w.res(null)); c.waiters = []; };
  c.ready = new Promise((res) => { s.onopen = () => res(true); s.onerror = () => res(false); });
  c.next = (pred, ms = 3000) => {
    const seen = c.msgs.find(pred);
    if (seen) return Promise.resolve(seen);
    if (c.closed) return Promise.resolve(null);
    return new Promise((res) => {
      const w = { pred, res };
      c.waiters.push(w);
      setTimeout(() => { c.waiters = c.waiters.filter(x => x !== w); res(null); }, ms);
    });
  };
  c.send = (o) => s.send(typeof o === 'string' ? o : JSON.stringify(o));
  c.whenClosed = async (ms = 3000) => { for (let i = 0; i < ms / 50 && !c.closed; i++) await sleep(50); return c.closed; };
  return c;
}
const type = (t) => (m) => m.type === t;
const event = (e) => (m) => m.type === 'event' && m.event === e;

// An answer to the server's offer, written as a browser would: recvonly, active, our own ICE
// credentials and fingerprint, no candidates (the server is ICE-lite and needs none).
function answerFor(offer) {
  const fp = WHEP_OFFER.match(/a=fingerprint:.*\r?\n/)[0];
  return offer.split(/\r?\n/).filter(l => l && !/^a=(ice-lite|candidate|end-of-candidates|ssrc|ssrc-group|msid|ice-ufrag|ice-pwd|fingerprint|setup)/.test(l))
    .flatMap(l => l.startsWith('m=') ? [l, 'a=ice-ufrag:abcd', 'a=ice-pwd:abcdefghijklmnopqrstuvwx', fp.trim(), 'a=setup:active'] : [l])
    .map(l => l === 'a=sendonly' ? 'a=recvonly' : l).join('\r\n') + '\r\n';
}

// Opens a WebSocket by hand, answers the first text frame with a close of its own at once, and
// returns the opcodes of every frame the server sent until it closed the connection (3 s at most).
function rawCrossingClose(port, path) {
  return new Promise((resolve) => {
    const sock = connect(Number(port), '127.0.0.1');
    let buf = Buffer.alloc(0), upgraded = false, closedByUs = false;
    const ops = [];
    const done = () => { sock.destroy(); resolve(ops); };
    setTimeout(done, 3000);
    sock.on('connect', () => sock.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n` +
      'Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n'));
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (!upgraded) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        upgraded = true;
        buf = buf.subarray(end + 4);
      }
      while (buf.length >= 2) { /* server frames: unmasked, payloads under 64 KiB here */
        let len = buf[1] & 0x7f, off = 2;
        if (len === 126) { if (buf.length < 4) return; len = buf.readUInt16BE(2); off = 4; }
        if (buf.length < off + len) return;
        ops.push(buf[0] & 0x0f);
        buf = buf.subarray(off + len);
        if (!closedByUs) { /* a masked close 1000 with a zero mask */
          closedByUs = true;
          sock.write(Buffer.from([0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8]));
        }
      }
    });
    sock.on('close', done);
    sock.on('error', done);
  });
}

// Until the session list says so, for at most ms.
async function sessionGone(id, ms = 1000) {
  const t0 = Date.now();
  while (Date.now() - t0 < ms + 500) {
    if (!(await sessions()).some(s => s.id === id)) return Date.now() - t0;
    await sleep(50);
  }
  return -1;
}

try {
  // An offer that never comes: closed after webrtc.dtls_timeout_ms (10 s), started first so
  // the wait overlaps the rest.
  const silent = open('/live/silent/webrtc/publish');

  // Refusals, with WHIP/WHEP's statuses and reasons.
  for (const [path, status, reason] of [
    ['/live/cam/webrtc/nope', 404, '/{app}/{stream}/webrtc'],
    ['/live/cam/webrtc', 404, 'not being published'],
    ['/locked/cam/webrtc/publish', 401, 'needs a publish token'],
    ['/locked/cam/webrtc/publish?token=bad', 403, 'wrong publish token'],
    ['/nope/cam/webrtc/publish', 403, "app 'nope' is not configured"],
    ['/live/bad%20name/webrtc/publish', 400, 'letters, digits'],
    ['/live/cam/webrtc/publish?room=..x', 400, 'room'],
    // A close reason is cut to 110 bytes, here in the middle of a two-byte character (the
    // stream name is echoed in the reason): what is sent must still be UTF-8 (RFC 6455 §5.5.1).
    ['/live/' + encodeURIComponent('xy' + 'é'.repeat(60)) + '/webrtc/publish', 400, 'bad app or stream name'],
  ]) {
    const c = open(path);
    const m = await c.next(type('error'));
    const cl = await c.whenClosed();
    r.check(`${path}: error ${status} (${reason}) and the socket closes with 1008`,
      m?.status === status && m.reason.includes(reason) && cl?.code === 1008, JSON.stringify({ m, cl }));
  }

  // The right token, as ?token= (browsers cannot set headers on a WebSocket).
  const tok = open('/locked/cam/webrtc/publish?token=pub');
  await tok.ready;
  tok.send({ type: 'offer', sdp: WHIP_OFFER });
  r.check('?token= with the app\'s publish token is admitted (answered)', !!(await tok.next(type('answer'))), JSON.stringify(tok.msgs));
  tok.s.close();

  // A client that closes as soon as it reads the error (its close crosses ours) gets exactly
  // one close frame back (RFC 6455 §5.5.1; Chromium fails a socket that gets two).
  r.check('crossing closes: one close frame from the server', await (async () => {
    const frames = await rawCrossingClose(new URL(base).port, '/live/cam/webrtc/nope');
    return frames.filter(op => op === 8).length === 1 ? true : (console.log(`  frames: ${frames}`), false);
  })());

  // Publish: offer -> answer with the session id, then the end of the server's candidates.
  const pub = open('/live/cam/webrtc/publish?room=r');
  await pub.ready;
  pub.send({ type: 'offer', sdp: WHIP_OFFER });
  const ans = await pub.next(type('answer'));
  r.check('publish: the offer is answered (sdp, session id)', ans && /^v=0/.test(ans.sdp) && /a=recvonly/.test(ans.sdp) && /^[0-9a-f]{16}$/.test(ans.session), JSON.stringify(ans)?.slice(0, 200));
  r.check('publish: then {"type":"candidate","candidate":null}', !!(await pub.next(m => m.type === 'candidate' && m.candidate === null)));
  const list = await sessions();
  const ps = list.find(s => s.id === ans?.session);
  r.check('the API lists the session as a websocket publisher', ps?.signaling === 'websocket' && ps.role === 'publisher', JSON.stringify(ps));
  r.check('publish: trickled candidates and pings are taken (pong)', await (async () => {
    pub.send({ type: 'candidate', candidate: { candidate: 'candidate:1 1 udp 2122260223 192.0.2.9 50000 typ host', sdpMid: '0', sdpMLineIndex: 0 }, label: 0, id: '0' });
    pub.send({ type: 'candidate', candidate: null });
    pub.send({ type: 'ping' });
    return !!(await pub.next(type('pong')));
  })());
  r.check('room r: an empty list at once (live/cam is not named r.*)', !!(await pub.next(m => m.type === 'event' && m.event === 'room' && m.streams.length === 0)));

  // Play: the server offers, a hand-made answer starts the session.
  const play = open('/live/cam/webrtc');
  const offer = await play.next(type('offer'));
  r.check('play: the server offers at once (ice-lite, actpass, sendonly, the publisher\'s codecs)',
    offer && /a=ice-lite/.test(offer.sdp) && /a=setup:actpass/.test(offer.sdp) && /a=sendonly/.test(offer.sdp) && /opus\/48000/.test(offer.sdp) && /m=video/.test(offer.sdp) && /a=candidate:.* typ host/.test(offer.sdp),
    offer?.sdp?.slice(0, 300));
  play.send({ type: 'answer', sdp: answerFor(offer.sdp) });
  const viewers = await play.next(event('viewers'));
  r.check('play: the answer starts the session (a viewers event counts it)', viewers?.count === 1, JSON.stringify(play.msgs.slice(-3)));
  const pl = (await sessions()).find(s => s.id === offer.session);
  r.check('the API lists the player by the id its offer named', pl?.signaling === 'websocket' && pl.role === 'player', JSON.stringify(pl));
  r.check('the publisher hears of its viewer', (await pub.next(m => m.type === 'event' && m.event === 'viewers' && m.count === 1))?.count === 1);

  // A client offer on a play socket is answered instead.
  const play2 = open('/live/cam/webrtc');
  await play2.ready;
  play2.send({ type: 'offer', sdp: WHEP_OFFER });
  const a2 = await play2.next(type('answer'));
  r.check('play: a client offer is answered (sendonly answer)', a2 && /a=sendonly/.test(a2.sdp), JSON.stringify(play2.msgs.map(m => m.type)));

  // A bad answer: error 400 and close.
  const play3 = open('/live/cam/webrtc');
  await play3.next(type('offer'));
  play3.send({ type: 'answer', sdp: 'v=0\r\nbroken' });
  const e3 = await play3.next(type('error'));
  r.check('play: a bad answer is an error 400 and closes the socket', e3?.status === 400 && (await play3.whenClosed())?.code === 1008, JSON.stringify(e3));

  // The publisher goes and comes back: players hear of it; the publisher socket's close ends
  // its session within a second.
  pub.s.close();
  const gone = await sessionGone(ans.session);
  r.check(`closing the publisher's socket ends its session within a second (${gone} ms)`, gone >= 0 && gone <= 1000);
  r.check('play: publisher_left', !!(await play.next(event('publisher_left'))));
  const pub2 = open('/live/cam/webrtc/publish');
  await pub2.ready;
  pub2.send({ type: 'offer', sdp: WHIP_OFFER });
  await pub2.next(type('answer'));
  r.check('play: publisher_returned', !!(await play.next(event('publisher_returned'))));

  // A second offer on a live socket closes it (no renegotiation).
  pub2.send({ type: 'offer', sdp: WHIP_OFFER });
  const e4 = await pub2.next(type('error'));
  r.check('a second offer: error 400, closed, its session ended', e4?.status === 400 && (await pub2.whenClosed())?.code === 1008 && (await sessionGone((await pub2.next(type('answer'))).session)) >= 0, JSON.stringify(e4));

  // The session's end closes its socket: kicked through the API.
  const del = await fetch(`${base}/api/v1/sessions/${offer.session}`, { method: 'DELETE' });
  const closedEv = await play.next(event('closed'));
  const pc = await play.whenClosed(1000);
  r.check('a session kicked through the API: event closed, then the socket closes (1000)', del.status === 200 && closedEv && pc?.code === 1000, JSON.stringify({ closedEv, pc }));

  // Rooms: members are the app's published streams named ROOM.*.
  const a = open('/live/r.alice/webrtc/publish?room=r');
  await a.ready;
  a.send({ type: 'offer', sdp: WHIP_OFFER });
  r.check('room: alice sees herself', !!(await a.next(m => m.event === 'room' && m.streams.join() === 'r.alice')));
  const b = open('/live/r.bob/webrtc/publish?room=r');
  await b.ready;
  b.send({ type: 'offer', sdp: WHIP_OFFER });
  r.check('room: bob sees both', !!(await b.next(m => m.event === 'room' && m.streams.join() === 'r.alice,r.bob')));
  r.check('room: alice hears bob join', !!(await a.next(m => m.event === 'room' && m.streams.join() === 'r.alice,r.bob')));
  b.s.close();
  r.check('room: alice hears bob leave', !!(await a.next(m => m.event === 'room' && m.streams.join() === 'r.alice' && a.msgs.filter(x => x.event === 'room').length >= 3)));

  // Hostile input closes only that socket; alice's session lives on.
  const hostile = [
    ['malformed JSON', (c) => c.send('{"type":'), 1008, 400],
    ['an unknown type', (c) => c.send({ type: 'hello' }), 1008, 400],
    ['a binary frame', (c) => c.s.send(new Uint8Array([1, 2, 3])), 1003, 400],
    ['a 100 KiB message', (c) => c.send(JSON.stringify({ type: 'ping', pad: 'x'.repeat(100 * 1024) })), 1009, 413],
    ['a flood of 200 pings', (c) => { for (let i = 0; i < 200; i++) c.send({ type: 'ping' }); }, 1008, 429],
    ['an answer on a publish socket', (c) => c.send({ type: 'answer', sdp: 'v=0' }), 1008, 400],
  ];
  for (const [what, act, code, status] of hostile) {
    const c = open('/live/h/webrtc/publish');
    await c.ready;
    act(c);
    const cl = await c.whenClosed();
    const err = c.msgs.find(type('error'));
    const pongs = c.msgs.filter(type('pong')).length;
    r.check(`${what}: closed with ${code} and an error ${status}${what.includes('flood') ? ` (${pongs} pongs, at most 50)` : ''}`,
      cl?.code === code && err?.status === status && pongs <= 50, JSON.stringify({ cl, err }));
  }
  r.check('alice\'s session is untouched by all that', (await sessions()).some(s => s.app === 'live' && s.stream === 'r.alice'));
  a.s.close();
  play2.s.close();
  await sleep(300);

  // The socket is a session of its address: limits.max_sessions_per_ip (8) counts sockets.
  const left = 8 - (await sessions()).length - 1; // `silent` is open too
  const socks = [];
  for (let i = 0; i < left; i++) { const c = open(`/live/n${i}/webrtc/publish`); socks.push(c); await c.ready; }
  const over = open('/live/over/webrtc/publish');
  const eo = await over.next(type('error'));
  const co = await over.whenClosed();
  r.check(`socket ${left + 2} from one address: error 429 (max_sessions_per_ip), closed with 1013`, eo?.status === 429 && co?.code === 1013, JSON.stringify({ eo, co }));
  r.check('the sockets before it are still open', socks.every(c => !c.closed));
  socks.forEach(c => c.s.close());

  // Media, with another WebRTC stack than the browser's: aiortc publishes over WHIP, and an
  // aiortc player answers the server's offer (ICE-lite, actpass) that came over a WebSocket.
  const peer = new URL('rtc_peer.py', import.meta.url).pathname;
  const aioPub = spawn('/usr/bin/python3', [peer, 'publish', `${base}/whip/live/aio`, '25']);
  const pubEvents = createInterface({ input: aioPub.stdout });
  await new Promise((res) => { pubEvents.on('line', (l) => { if (/"connected"|refused|not-connected/.test(l)) res(); }); setTimeout(res, 10000); });
  const wp = open('/live/aio/webrtc');
  const aoffer = await wp.next(type('offer'), 5000);
  const aioPlay = spawn('/usr/bin/python3', [peer, 'answer', '-', '4']);
  const events = [];
  const playDone = new Promise((res) => {
    createInterface({ input: aioPlay.stdout }).on('line', (l) => {
      const e = JSON.parse(l);
      events.push(e);
      if (e.event === 'answer') wp.send({ type: 'answer', sdp: e.sdp });
    });
    aioPlay.on('close', res);
  });
  aioPlay.stdin.write(JSON.stringify(aoffer) + '\n');
  await Promise.race([playDone, sleep(20000)]);
  const done = events.find(e => e.event === 'done');
  r.check(`aiortc plays the server's offer over a WebSocket: connected, video and audio decoded (${done?.video_frames} video, ${done?.audio_frames} audio frames in 4 s)`,
    events.some(e => e.event === 'connected') && done?.video_frames >= 30 && done?.audio_frames >= 50, JSON.stringify(events.map(e => e.event)));
  wp.s.close();
  aioPub.kill('SIGTERM');
  aioPlay.kill('SIGKILL');

  // The silent publisher: closed with 408 after the offer timeout.
  const es = await silent.next(type('error'), 12000);
  r.check('a publish socket that never offers: error 408 after webrtc.dtls_timeout_ms', es?.status === 408 && (await silent.whenClosed())?.code === 1008, JSON.stringify(es));
} catch (e) {
  r.check('no exception', false, e.stack);
}
process.exit(r.done());
