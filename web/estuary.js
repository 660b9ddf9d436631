// Estuary browser SDK: publish and play WebRTC through Estuary from any page. An ES module with
// no dependencies: RTCPeerConnection, WebSocket and fetch. Documented in docs/sdk.md.
//
//   import { Publisher, Player } from '/estuary.js';
//   const pub = new Publisher('wss://media.example.com/live/cam/webrtc/publish', { preview });
//   await pub.start();
//   const player = new Player('wss://media.example.com/live/cam/webrtc', video);
//   await player.play();
//
// Two signalings, one behaviour:
// - WebSocket (docs/websocket.md): ws(s)://HOST/{app}/{stream}/webrtc/publish, where the page
//   offers, and ws(s)://HOST/{app}/{stream}/webrtc, where the server offers and the page
//   answers. The socket is the session: closing it ends the session at once, and the server's
//   events (publisher_left, publisher_returned, viewers, room, closed) arrive on it.
// - WHIP and WHEP (RFC 9725 and the WHEP draft): http(s)://HOST/whip|whep/{app}/{stream}, POST
//   of the offer, 201 with the answer and a Location to DELETE at the end.
// Estuary is ICE-lite: its candidates are in its SDP and it answers the browser's checks from
// wherever they come, so offers go out at once and no candidates are trickled.

const FATAL = new Set([400, 401, 403, 415]);  // statuses that a retry would only repeat
const BACKOFF_MIN_MS = 500, BACKOFF_MAX_MS = 10000;
const GOOD_SESSION_MS = 5000;       // connected this long: the next failure retries quickly again
const SIGNAL_TIMEOUT_MS = 15000;    // for an answer (or the server's offer) to arrive
const CONNECT_TIMEOUT_MS = 15000;   // for ICE and DTLS after the answer
const DISCONNECTED_MS = 3000;       // a 'disconnected' peer connection this long is re-established
const RETURN_FRAMES_MS = 3000;      // after publisher_returned, for new media to be decoded
const WHEP_STALL_MS = 5000;         // a WHEP player without new media this long tries again

// An error with the server's status (0 for network trouble); `retry` says whether trying again
// can help.
export class EstuaryError extends Error {
  constructor(status, reason, retry = status ? !FATAL.has(status) : true) {
    super(status ? `${status}: ${reason}` : reason);
    this.status = status;
    this.reason = reason;
    this.retry = retry;
  }
}

// Which signaling a URL asks for: ws(s):// URLs and paths ending in /webrtc[/publish] are the
// WebSocket protocol, paths with /whip/ or /whep/ are WHIP/WHEP.
function signalingOf(url) {
  const u = new URL(url, location.href);
  if (u.protocol === 'ws:' || u.protocol === 'wss:') return { ws: true, url: u };
  if (/\/wh[ie]p\//.test(u.pathname)) return { ws: false, url: u };
  if (/\/webrtc(\/publish)?$/.test(u.pathname)) {
    u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
    return { ws: true, url: u };
  }
  throw new EstuaryError(0, `not a WebSocket (…/webrtc[/publish]) or WHIP/WHEP URL: ${url}`, false);
}

// The URL of app/stream on `server` (default: this page's origin): transport 'ws' (WebSocket
// signaling) or 'http' (WHIP to publish, WHEP to play). `query` is added as is (token, eip, room).
export function streamUrl({ app, stream, publish = false, transport = 'ws', server = location.origin, query = '' }) {
  const base = server.replace(/\/$/, '');
  const q = query ? (query.startsWith('?') ? query : `?${query}`) : '';
  const a = encodeURIComponent(app), s = encodeURIComponent(stream);
  if (transport === 'ws') return `${base.replace(/^http/, 'ws')}/${a}/${s}/webrtc${publish ? '/publish' : ''}${q}`;
  return `${base.replace(/^ws/, 'http')}/${publish ? 'whip' : 'whep'}/${a}/${s}${q}`;
}

// Codecs the browser can send, for a codec picker: ['VP8', 'H264', 'VP9', 'AV1'].
export function videoCodecs() {
  const caps = RTCRtpSender.getCapabilities?.('video')?.codecs ?? [];
  const names = caps.map(c => c.mimeType.split('/')[1]).filter(n => !/rtx|red|ulpfec|flexfec/i.test(n));
  return [...new Set(names)];
}

// Puts videoCodec ('H264', 'VP8', ...) first in the transceiver's offer; Estuary follows it.
function preferCodec(transceiver, videoCodec) {
  if (!videoCodec || !transceiver.setCodecPreferences) return;
  const all = RTCRtpSender.getCapabilities('video').codecs;
  const want = all.filter(c => c.mimeType.toLowerCase() === `video/${videoCodec.toLowerCase()}`);
  if (!want.length) throw new EstuaryError(0, `this browser cannot send ${videoCodec}`, false);
  transceiver.setCodecPreferences([...want, ...all.filter(c => !want.includes(c))]);
}

const newPeerConnection = () => new RTCPeerConnection({ iceServers: [], bundlePolicy: 'max-bundle' });

// WHIP/WHEP: POSTs the offer, resolves to { answer, resource, etag }.
async function postOffer(url, sdp, token) {
  const headers = { 'Content-Type': 'application/sdp' };
  if (token) headers.Authorization = `Bearer ${token}`;
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), SIGNAL_TIMEOUT_MS);
  let res, text;
  try {
    res = await fetch(url, { method: 'POST', headers, body: sdp, signal: abort.signal });
    text = await res.text();
  } catch (e) {
    throw new EstuaryError(0, `${url}: ${e.name === 'AbortError' ? 'no answer' : e.message}`);
  } finally {
    clearTimeout(timer);
  }
  if (res.status !== 201) {
    let reason = text;
    try { reason = JSON.parse(text).error; } catch { /* plain text */ }
    throw new EstuaryError(res.status, reason);
  }
  return { answer: text, resource: new URL(res.headers.get('Location'), url).href, etag: res.headers.get('ETag') };
}

function deleteResource(resource, token) {
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  return fetch(resource, { method: 'DELETE', headers }).catch(() => {});
}

// The session id in a WHIP/WHEP resource URL: .../{id}-{secret}.
const idOfResource = (resource) => resource?.split('/').pop().split('-')[0] ?? null;

// What Publisher and Player share: one session at a time (signaling, peer connection, the
// watchdogs) and the loop that re-establishes it with backoff until stop().
class Session {
  constructor(url, opts, role) {
    this.opts = opts;
    this.role = role;                 // 'publisher' or 'player'
    this.url = url;
    this.signaling = signalingOf(url);
    this.pc = null;                   // the current RTCPeerConnection
    this.ws = null;                   // the current WebSocket (WebSocket signaling)
    this.session = null;              // the server's session id (GET /api/v1/sessions/{id})
    this.resource = null;             // the WHIP/WHEP resource URL
    this.status = 'stopped';
    this.stats = null;                // the last stats given to onStats
    this._running = false;
    this._gen = 0;                    // which attempt is current: older ones' callbacks are ignored
    this._backoff = BACKOFF_MIN_MS;
    this._timers = new Set();
    this._waiters = [];
  }

  _setStatus(status, detail) {
    this.status = status;
    this.opts.onStatus?.(status, detail);
  }

  _later(fn, ms) {
    const t = setTimeout(() => { this._timers.delete(t); fn(); }, ms);
    this._timers.add(t);
    return t;
  }

  // Starts the loop; resolves with `this` once the first session is answered, rejects on an
  // error a retry would not fix (or when stop() comes first).
  _begin() {
    if (this._running) return this._first?.promise ?? Promise.resolve(this);
    this._running = true;
    this._backoff = BACKOFF_MIN_MS;
    let resolve, reject;
    const promise = new Promise((res, rej) => { resolve = res; reject = rej; });
    this._first = { promise, resolve, reject };
    this._statsTimer = setInterval(() => this._tick().catch(() => {}), 1000);
    this._attempt();
    return promise;
  }

  async _attempt() {
    if (!this._running) return;
    const gen = ++this._gen;
    this._setStatus(this._everAnswered ? 'reconnecting' : 'connecting');
    try {
      await this._connect(gen);
      if (gen !== this._gen) return;
      this._everAnswered = true;
      this._watchConnection(gen);
      this._first?.resolve(this);
      this._first = null;
    } catch (e) {
      if (gen === this._gen) this._fail(e, gen);
    }
  }

  // The current session failed: tear it down and, unless the error is final, try again later.
  async _fail(err, gen) {
    if (gen !== this._gen || !this._running) return;
    this._gen++;                       // callbacks of the failed session are now stale
    const e = err instanceof EstuaryError ? err : new EstuaryError(0, err?.message ?? String(err), false);
    await this._teardown();
    if (!e.retry) {
      this._running = false;
      this._stopTimers();
      this._setStatus('error', e.message);
      this._first?.reject(e);
      this._first = null;
      return;
    }
    this._setStatus('reconnecting', e.message);
    const wait = this._backoff;
    this._backoff = Math.min(this._backoff * 2, BACKOFF_MAX_MS);
    this._later(() => this._attempt(), wait);
  }

  // Watchdogs of an answered session: ICE/DTLS must connect, and a connection that fails or
  // stays disconnected is re-established.
  _watchConnection(gen) {
    const pc = this.pc;
    let disconnected = null;
    const connectTimer = this._later(() => {
      if (gen === this._gen && pc.connectionState !== 'connected') this._fail(new EstuaryError(0, 'ICE/DTLS did not connect'), gen);
    }, CONNECT_TIMEOUT_MS);
    const check = () => {
      if (gen !== this._gen) return;
      const state = pc.connectionState;
      if (state === 'connected') {
        clearTimeout(connectTimer);
        clearTimeout(disconnected);
        disconnected = null;
        this._later(() => { if (gen === this._gen && pc.connectionState === 'connected') this._backoff = BACKOFF_MIN_MS; }, GOOD_SESSION_MS);
        this._progressAt = performance.now();
        this._setStatus('live');
      } else if (state === 'failed') {
        this._fail(new EstuaryError(0, 'the peer connection failed'), gen);
      } else if (state === 'disconnected' && !disconnected) {
        disconnected = this._later(() => {
          if (gen === this._gen && pc.connectionState === 'disconnected') this._fail(new EstuaryError(0, 'the peer connection stayed disconnected'), gen);
        }, DISCONNECTED_MS);
      }
    };
    pc.addEventListener('connectionstatechange', check);
    check();
  }

  // --- WebSocket signaling -------------------------------------------------------------------

  // Opens the socket (with ?token=); resolves once it is open.
  _openSocket(gen) {
    this._check(gen);
    const u = new URL(this.signaling.url);
    if (this.opts.token) u.searchParams.set('token', this.opts.token);
    const ws = this.ws = new WebSocket(u.href);
    return new Promise((resolve, reject) => {
      ws.onopen = () => resolve(ws);
      ws.onerror = () => reject(new EstuaryError(0, `cannot open ${this.signaling.url.href}`));
      ws.onclose = (e) => {
        reject(new EstuaryError(0, `socket closed (${e.code} ${e.reason})`));
        if (gen !== this._gen) return;
        this._rejectWaiters(new EstuaryError(0, `socket closed (${e.code}${e.reason ? ' ' + e.reason : ''})`));
        this._fail(this._serverError ?? new EstuaryError(0, `the signaling socket closed (${e.code}${e.reason ? ' ' + e.reason : ''})`), gen);
      };
      ws.onmessage = ({ data }) => {
        if (gen !== this._gen) return;
        let m;
        try { m = JSON.parse(data); } catch { return; }
        this._onMessage(m, gen);
      };
    });
  }

  // Throws when attempt `gen` is no longer the current one (stop() or a failure came meanwhile),
  // before it opens a socket or posts an offer for nothing.
  // WHIP/WHEP: POSTs this.pc's offer and applies the 201's answer. false when a newer attempt
  // began meanwhile (then the resource just made is deleted).
  async _post(gen) {
    this._check(gen);
    const res = await postOffer(this.signaling.url.href, this.pc.localDescription.sdp, this.opts.token);
    if (gen !== this._gen) { deleteResource(res.resource, this.opts.token); return false; }
    this.resource = res.resource;
    this.etag = res.etag;
    this.session = idOfResource(res.resource);
    await this._applyAnswer(res.answer);
    return true;
  }

  async _applyAnswer(sdp) {
    try {
      await this.pc.setRemoteDescription({ type: 'answer', sdp });
    } catch (e) {
      throw new EstuaryError(0, `the server's answer: ${e.message}`, false);
    }
  }

  _check(gen) {
    if (gen !== this._gen || !this._running) throw new EstuaryError(0, 'superseded', false);
  }

  _send(m) {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(m));
  }

  // Resolves with the next message of one of `types`; an error message rejects it.
  _next(types) {
    return new Promise((resolve, reject) => {
      const w = { types, resolve, reject };
      this._waiters.push(w);
      w.timer = setTimeout(() => {
        this._waiters = this._waiters.filter(x => x !== w);
        reject(new EstuaryError(0, `no ${types.join(' or ')} from the server within ${SIGNAL_TIMEOUT_MS / 1000} s`));
      }, SIGNAL_TIMEOUT_MS);
    });
  }

  _rejectWaiters(err) {
    for (const w of this._waiters) { clearTimeout(w.timer); w.reject(err); }
    this._waiters = [];
  }

  _onMessage(m, gen) {
    if (m.type === 'error') {
      // The server closes the socket after it; the close reports this error.
      this._serverError = new EstuaryError(m.status, m.reason);
      this._rejectWaiters(this._serverError);
      return;
    }
    const w = this._waiters.find(x => x.types.includes(m.type));
    if (w) {
      this._waiters = this._waiters.filter(x => x !== w);
      clearTimeout(w.timer);
      w.resolve(m);
      return;
    }
    if (m.type === 'ping') this._send({ type: 'pong' });
    else if (m.type === 'candidate' && m.candidate?.candidate) this.pc?.addIceCandidate(m.candidate).catch(() => {});
    else if (m.type === 'event') {
      this.opts.onEvent?.(m);
      if (m.event === 'closed') this._fail(new EstuaryError(0, `the server ended the session: ${m.reason ?? ''}`), gen);
      else this._onEvent(m, gen);
    }
  }

  _onEvent() {}

  // --- stats, every second --------------------------------------------------------------------

  async _tick() {
    const pc = this.pc, gen = this._gen;
    if (!pc || pc.connectionState === 'closed') return;
    const report = await pc.getStats();
    if (gen !== this._gen) return;
    const now = performance.now();
    const c = { bytes: 0, audioBytes: 0, videoBytes: 0, frames: 0, packets: 0, lost: 0, jbDelay: 0, jbCount: 0, audioBytesIn: 0 };
    let width = 0, height = 0, rtt = null, audioLevel = null;
    const pairs = new Map();
    report.forEach(s => {
      if (s.type === 'candidate-pair') pairs.set(s.id, s);
      if (s.type === 'transport' && s.selectedCandidatePairId) pairs.selected = s.selectedCandidatePairId;
      const out = s.type === 'outbound-rtp', inb = s.type === 'inbound-rtp';
      if ((this.role === 'publisher' && out) || (this.role === 'player' && inb)) {
        const bytes = (out ? s.bytesSent : s.bytesReceived) || 0;
        c.bytes += bytes;
        if (s.kind === 'audio') { c.audioBytes += bytes; if (inb && s.audioLevel != null) audioLevel = s.audioLevel; }
        if (s.kind === 'video') {
          c.videoBytes += bytes;
          c.frames += (out ? s.framesEncoded : s.framesDecoded) || 0;
          width = s.frameWidth || width;
          height = s.frameHeight || height;
          if (inb) { c.jbDelay += s.jitterBufferDelay || 0; c.jbCount += s.jitterBufferEmittedCount || 0; }
        }
        c.packets += (out ? s.packetsSent : s.packetsReceived) || 0;
        if (inb) c.lost += Math.max(0, s.packetsLost || 0);
      }
      if (this.role === 'publisher' && s.type === 'remote-inbound-rtp') {
        c.lost += Math.max(0, s.packetsLost || 0);
        if (s.roundTripTime != null) rtt = s.roundTripTime * 1000;
      }
    });
    const pair = pairs.get(pairs.selected) ?? [...pairs.values()].find(p => p.nominated && p.state === 'succeeded');
    if (pair?.currentRoundTripTime != null) rtt = pair.currentRoundTripTime * 1000;
    const p = this._prev?.pc === pc ? this._prev : null;
    const dt = p ? (now - p.at) / 1000 : 0;
    const d = (k) => (p ? c[k] - p.c[k] : 0);
    const stats = {
      state: pc.connectionState,
      bitrate: dt ? Math.round(d('bytes') * 8 / dt) : 0,
      audioBitrate: dt ? Math.round(d('audioBytes') * 8 / dt) : 0,
      videoBitrate: dt ? Math.round(d('videoBytes') * 8 / dt) : 0,
      fps: dt ? Math.round(d('frames') / dt * 10) / 10 : 0,
      width, height,
      frames: c.frames,
      packetsLost: c.lost,
      packetLoss: d('packets') + d('lost') > 0 ? Math.max(0, d('lost')) / (d('packets') + Math.max(0, d('lost'))) : 0,
      rtt: rtt == null ? null : Math.round(rtt * 10) / 10,
    };
    if (this.role === 'player') {
      stats.jitterBufferDelay = d('jbCount') > 0 ? Math.round(d('jbDelay') / d('jbCount') * 1000 * 10) / 10 : null;
      stats.audioLevel = audioLevel;
    }
    this._prev = { pc, at: now, c };
    this.stats = stats;
    this._watchMedia(c, p?.c, gen);
    this.opts.onStats?.(stats);
  }

  _watchMedia() {}

  // --- the end of a session ---------------------------------------------------------------------

  async _teardown() {
    this._rejectWaiters(new EstuaryError(0, 'stopped'));
    this._serverError = null;
    const { ws, pc, resource } = this;
    this.ws = null;
    this.resource = null;
    if (ws) { ws.onclose = ws.onmessage = ws.onerror = null; if (ws.readyState <= WebSocket.OPEN) ws.close(1000); }
    pc?.close();
    if (resource) await deleteResource(resource, this.opts.token);
  }

  _stopTimers() {
    for (const t of this._timers) clearTimeout(t);
    this._timers.clear();
    clearInterval(this._statsTimer);
  }

  // Ends the session (closes the socket, or DELETEs the WHIP/WHEP resource) and stops retrying.
  async _end() {
    const wasRunning = this._running;
    this._running = false;
    this._gen++;
    this._stopTimers();
    await this._teardown();
    if (this._first) { this._first.reject(new EstuaryError(0, 'stopped', false)); this._first = null; }
    if (wasRunning || this.status !== 'stopped') this._setStatus('stopped');
  }
}

// Publishes the camera and microphone (or any MediaStream) to `url`.
//
// Options: constraints (getUserMedia, default {audio: true, video: true}; {audio: true, video:
// false} publishes audio only), media (a MediaStream of the page's instead), videoCodec,
// maxBitrate (bit/s), token, canvasCallback(canvas, ctx), preview (a <video> showing what is
// published), onStatus(status, detail), onStats(stats), onEvent(message).
export class Publisher extends Session {
  constructor(url, opts = {}) {
    super(url, opts, 'publisher');
    this.media = null;          // the published MediaStream (its video is the canvas's with canvasCallback)
    this.camera = null;         // what getUserMedia gave (or opts.media)
    this.screen = null;         // the shared screen's MediaStream while shareScreen() is on
    this.muted = false;
    this.videoMuted = false;
  }

  // Opens the camera (once) and publishes; resolves once the server answered.
  async start() {
    if (!this._running) {
      try {
        await this._openMedia();
      } catch (e) {
        this._setStatus('error', e.message);
        throw e;
      }
    }
    return this._begin();
  }

  async _openMedia() {
    if (this.media) return;
    this.camera = this.opts.media ?? await navigator.mediaDevices.getUserMedia(this.opts.constraints ?? { audio: true, video: true });
    this._cameraOwned = !this.opts.media;
    this._sourceVideo = this.camera.getVideoTracks()[0] ?? null;
    const audio = this.camera.getAudioTracks()[0] ?? null;
    let video = this._sourceVideo;
    if (video && this.opts.canvasCallback) {
      this._canvas = new CanvasPipe(this.opts.canvasCallback);
      video = await this._canvas.start(video);
      this.canvas = this._canvas.canvas;
    }
    this.media = new MediaStream([audio, video].filter(Boolean));
    if (this.opts.preview) this.opts.preview.srcObject = this.media;
  }

  async _connect(gen) {
    const pc = this.pc = newPeerConnection();
    for (const track of this.media.getTracks()) {
      const tr = pc.addTransceiver(track, { direction: 'sendonly', streams: [this.media] });
      if (track.kind === 'video') preferCodec(tr, this.opts.videoCodec);
    }
    await pc.setLocalDescription(await pc.createOffer());
    if (this.signaling.ws) {
      await this._openSocket(gen);
      this._check(gen);
      this._send({ type: 'offer', sdp: pc.localDescription.sdp });
      const m = await this._next(['answer']);
      this.session = m.session ?? null;
      await this._applyAnswer(m.sdp);
    } else if (!(await this._post(gen))) {
      return;
    }
    if (this.opts.maxBitrate) await this._limitBitrate(this.opts.maxBitrate);
  }

  async _limitBitrate(bps) {
    const sender = this._sender('video');
    if (!sender) return;
    const p = sender.getParameters();
    if (!p.encodings?.length) p.encodings = [{}];
    p.encodings[0].maxBitrate = bps;
    await sender.setParameters(p).catch(() => {});
  }

  _sender(kind) {
    return this.pc?.getSenders().find(s => s.track?.kind === kind) ?? null;
  }

  // Silence for the players (the audio track is disabled: no renegotiation).
  mute() { this.muted = true; this.media?.getAudioTracks().forEach(t => { t.enabled = false; }); }
  unmute() { this.muted = false; this.media?.getAudioTracks().forEach(t => { t.enabled = true; }); }

  // Black frames for the players.
  muteVideo() { this.videoMuted = true; this.media?.getVideoTracks().forEach(t => { t.enabled = false; }); }
  unmuteVideo() { this.videoMuted = false; this.media?.getVideoTracks().forEach(t => { t.enabled = true; }); }

  // Switches the published video between the camera and a screen (getDisplayMedia, or
  // `stream`, a MediaStream of the page's) in the same session: RTCRtpSender.replaceTrack, or
  // the canvas's source with canvasCallback. Resolves to true when the screen is now shared.
  // Sharing ends by itself (back to the camera) when the screen's track ends.
  async shareScreen({ stream } = {}) {
    if (!this.media?.getVideoTracks().length) throw new EstuaryError(0, 'no video is published (audio only)', false);
    if (this.screen) {
      const s = this.screen;
      this.screen = null;
      await this._useVideo(this._sourceVideo);
      if (this._screenOwned) s.getTracks().forEach(t => t.stop());
      return false;
    }
    const s = stream ?? await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
    const track = s.getVideoTracks()[0];
    if (!track) throw new EstuaryError(0, 'the screen stream has no video', false);
    this._screenOwned = !stream;
    this.screen = s;
    track.addEventListener('ended', () => { if (this.screen === s) this.shareScreen().catch(() => {}); });
    await this._useVideo(track);
    return true;
  }

  async _useVideo(track) {
    if (this._canvas) { this._canvas.setSource(track); return; }
    const old = this.media.getVideoTracks()[0];
    track.enabled = !this.videoMuted;
    await this.pc?.getSenders().find(s => s.track === old)?.replaceTrack(track);
    this.media.removeTrack(old);
    this.media.addTrack(track);
    if (this.opts.preview) this.opts.preview.srcObject = this.media;
  }

  // Ends the publication, releases the camera (unless it was opts.media) and the screen.
  async stop() {
    await this._end();
    this._canvas?.stop();
    if (this._cameraOwned) this.camera?.getTracks().forEach(t => t.stop());
    if (this._screenOwned) this.screen?.getTracks().forEach(t => t.stop());
    if (this.opts.preview) this.opts.preview.srcObject = null;
    this._canvas = this.canvas = this.media = this.camera = this.screen = null;
  }
}

// The camera (or screen) drawn frame by frame into a 2D canvas, then canvasCallback(canvas,
// ctx) paints over it; the canvas's captureStream() track is what is published. Frames are
// pulled with MediaStreamTrackProcessor where there is one (Chromium: it keeps going in a
// background tab), else from a <video> element with requestVideoFrameCallback.
class CanvasPipe {
  constructor(callback) {
    this.callback = callback;
    this.canvas = document.createElement('canvas');
    this.ctx = this.canvas.getContext('2d');
    this.running = false;
  }

  async start(track) {
    const s = track.getSettings();
    this.canvas.width = s.width || 640;
    this.canvas.height = s.height || 480;
    this.ctx.fillRect(0, 0, this.canvas.width, this.canvas.height);
    this.out = this.canvas.captureStream(0).getVideoTracks()[0];
    this.running = true;
    this.setSource(track);
    return this.out;
  }

  setSource(track) {
    this.source = track;
    const gen = this.gen = (this.gen ?? 0) + 1;
    this.reader?.cancel().catch(() => {});
    this.reader = null;
    if (typeof MediaStreamTrackProcessor === 'function') this._pull(track, gen);
    else this._watch(track, gen);
  }

  _draw(frame, w, h) {
    if (!this.running) return;
    if (this.canvas.width !== w || this.canvas.height !== h) { this.canvas.width = w; this.canvas.height = h; }
    this.ctx.drawImage(frame, 0, 0, w, h);
    try { this.callback(this.canvas, this.ctx); } catch (e) { console.error('canvasCallback:', e); }
    this.out.requestFrame?.();
  }

  async _pull(track, gen) {
    const reader = this.reader = new MediaStreamTrackProcessor({ track }).readable.getReader();
    while (this.running && gen === this.gen) {
      const { value: frame, done } = await reader.read().catch(() => ({ done: true }));
      if (done) break;
      try { this._draw(frame, frame.displayWidth, frame.displayHeight); } finally { frame.close(); }
    }
  }

  _watch(track, gen) {
    const v = this.video ??= Object.assign(document.createElement('video'), { muted: true, playsInline: true });
    v.srcObject = new MediaStream([track]);
    v.play().catch(() => {});
    const step = () => {
      if (!this.running || gen !== this.gen) return;
      if (v.videoWidth) this._draw(v, v.videoWidth, v.videoHeight);
      if (v.requestVideoFrameCallback) v.requestVideoFrameCallback(step);
      else setTimeout(step, 1000 / 30);
    };
    step();
  }

  stop() {
    this.running = false;
    this.reader?.cancel().catch(() => {});
    this.out?.stop();
    if (this.video) this.video.srcObject = null;
  }
}

// Plays `url` into `video` (an HTMLVideoElement; may be null).
// Options: token, onStatus(status, detail), onStats(stats), onEvent(message).
export class Player extends Session {
  constructor(url, video, opts = {}) {
    super(url, opts, 'player');
    this.video = video;
    this.media = null;                // the current session's MediaStream
  }

  // Starts playing; resolves once the session is answered (media follows).
  play() { return this._begin(); }

  async _connect(gen) {
    const pc = this.pc = newPeerConnection();
    const media = this.media = new MediaStream();
    pc.ontrack = (e) => {
      media.addTrack(e.track);
      const v = this.video;
      if (!v || v.srcObject === media) return;
      v.srcObject = media;
      // A browser that does not let this page start sound by itself still plays it muted.
      v.play?.().catch((err) => {
        if (err.name !== 'NotAllowedError' || v.muted) return;
        v.muted = true;
        v.play().catch(() => {});
        this._setStatus(this.status, 'muted: the browser wants a click before playing sound');
      });
    };
    if (this.signaling.ws) {
      await this._openSocket(gen);
      this._check(gen);
      const offer = await this._next(['offer']);
      this.session = offer.session ?? null;
      try {
        await pc.setRemoteDescription({ type: 'offer', sdp: offer.sdp });
        await pc.setLocalDescription(await pc.createAnswer());
      } catch (e) {
        throw new EstuaryError(0, `the server's offer: ${e.message}`, false);
      }
      this._send({ type: 'answer', sdp: pc.localDescription.sdp });
    } else {
      pc.addTransceiver('audio', { direction: 'recvonly' });
      pc.addTransceiver('video', { direction: 'recvonly' });
      await pc.setLocalDescription(await pc.createOffer());
      await this._post(gen);
    }
  }

  _onEvent(m, gen) {
    if (m.event === 'publisher_left') this._setStatus('publisher_left');
    if (m.event === 'publisher_returned') {
      this._setStatus('publisher_returned');
      // The new publisher may send what this session cannot decode (another codec): without a
      // new frame within 3 s, the session is re-established.
      this._mediaCount().then((before) => this._later(async () => {
        if (gen !== this._gen) return;
        const after = await this._mediaCount();
        if (gen === this._gen && !(after > before)) this._fail(new EstuaryError(0, 'no new frames after the publisher returned'), gen);
      }, RETURN_FRAMES_MS));
    }
  }

  // Frames decoded so far, or, while none was, bytes received: what "media progresses" counts.
  async _mediaCount() {
    let frames = 0, bytes = 0;
    (await this.pc?.getStats())?.forEach(s => {
      if (s.type === 'inbound-rtp') { bytes += s.bytesReceived || 0; if (s.kind === 'video') frames += s.framesDecoded || 0; }
    });
    if (frames > 0) this._videoSeen = true;
    return this._videoSeen ? frames : bytes;
  }

  // Called every second with this and the previous second's counters: a WHEP player whose media
  // stopped for 5 s tries again (with WebSocket signaling the server says when the publisher
  // leaves and returns instead).
  _watchMedia(c, prev, gen) {
    if (!prev || this.pc?.connectionState !== 'connected') return;
    if (c.frames > 0) this._videoSeen = true;
    const now = performance.now();
    if (this._videoSeen ? c.frames > prev.frames : c.bytes > prev.bytes) this._progressAt = now;
    if (!this.signaling.ws && now - (this._progressAt ?? now) > WHEP_STALL_MS) {
      this._fail(new EstuaryError(0, `no media for ${WHEP_STALL_MS / 1000} s`), gen);
    }
  }

  async _teardown() {
    this._videoSeen = false;
    this._progressAt = null;
    await super._teardown();
  }

  // Stops playing (and retrying).
  async stop() {
    await this._end();
    if (this.video) this.video.srcObject = null;
    this.media = null;
  }
}

// A room on the WebSocket protocol: publishes `${room}.${name}` with ?room=ROOM, and plays every
// other stream the server's room events list (a Player per stream, created and stopped as the
// list changes). Options: server (default this page's origin), app ('live'), token, and the
// Publisher's constraints, videoCodec, maxBitrate, canvasCallback, preview; onJoin(stream, video,
// player) to place a new participant's <video>, onLeave(stream, video), accept(stream, players)
// to play only some (a call plays one other), onStatus(status, detail) (the publisher's),
// onStats(stats, stream) (the players'), onEvent(message).
export class Room {
  constructor(room, name, opts = {}) {
    this.room = room;
    this.name = name ?? `p${Math.random().toString(16).slice(2, 8)}`;
    this.stream = `${room}.${this.name}`;
    this.opts = opts;
    this.players = new Map();         // stream name -> { player, video }
    const { server, app = 'live', token } = opts;
    const query = `room=${encodeURIComponent(room)}`;
    this._url = (stream, publish) => streamUrl({ app, stream, publish, server, query: publish ? query : '' });
    this.publisher = new Publisher(this._url(this.stream, true), {
      ...opts, token,
      onEvent: (m) => { if (m.event === 'room' && m.room === room) this._members(m.streams); opts.onEvent?.(m); },
    });
  }

  // Publishes and starts playing the others; resolves once the publication is answered.
  join() { return this.publisher.start(); }

  _members(streams) {
    for (const [s, { player, video }] of this.players) {
      if (streams.includes(s)) continue;
      this.players.delete(s);
      player.stop();
      this.opts.onLeave?.(s, video);
    }
    for (const s of streams) {
      if (s === this.stream || this.players.has(s)) continue;
      if (this.opts.accept && !this.opts.accept(s, this.players)) continue;
      const video = Object.assign(document.createElement('video'), { autoplay: true, playsInline: true });
      video.dataset.stream = s;
      const onStats = this.opts.onStats ? (st) => this.opts.onStats(st, s) : null;
      const player = new Player(this._url(s, false), video, { token: this.opts.token, onStats });
      this.players.set(s, { player, video });
      this.opts.onJoin?.(s, video, player);
      player.play().catch(() => {});
    }
  }

  // Stops the publication and every player.
  async leave() {
    const all = [...this.players.entries()];
    this.players.clear();
    await Promise.all([this.publisher.stop(), ...all.map(([s, { player, video }]) => { this.opts.onLeave?.(s, video); return player.stop(); })]);
  }
}

// --- a latency probe: the publisher's wall clock burnt into the picture -----------------------

// Paints the low 32 bits of Date.now() as a strip of black and white blocks along the bottom of
// the canvas (two sync blocks, then 32 bits, most significant first); use it in a canvasCallback.
export function stampClock(canvas, ctx) {
  const b = Math.max(4, Math.floor(canvas.width / 36)), y = canvas.height - b;
  const t = Date.now() % 2 ** 32;
  ctx.fillStyle = '#fff'; ctx.fillRect(0, y, b, b);
  ctx.fillStyle = '#000'; ctx.fillRect(b, y, b, b);
  for (let i = 0; i < 32; i++) {
    ctx.fillStyle = Math.floor(t / 2 ** (31 - i)) % 2 ? '#fff' : '#000';
    ctx.fillRect((i + 2) * b, y, b, b);
  }
}

// Reads the strip stampClock painted from the frame `video` shows: the milliseconds between the
// publisher's clock when it drew the frame and this page's clock now (both machines' clocks:
// meaningful when they are the same machine or synchronised), or null when there is no strip.
export function readClock(video) {
  const w = video.videoWidth, h = video.videoHeight;
  if (!w || !h) return null;
  const b = Math.max(4, Math.floor(w / 36));
  const c = readClock.canvas ??= document.createElement('canvas');
  c.width = w; c.height = b;
  const g = c.getContext('2d', { willReadFrequently: true });
  g.drawImage(video, 0, h - b, w, b, 0, 0, w, b);
  const px = g.getImageData(0, 0, w, b).data;
  const level = (i) => { const o = (Math.floor(b / 2) * w + i * b + Math.floor(b / 2)) * 4; return (px[o] + px[o + 1] + px[o + 2]) / 3; };
  if (level(0) < 160 || level(1) > 96) return null;
  let t = 0;
  for (let i = 0; i < 32; i++) t = t * 2 + (level(i + 2) > 128 ? 1 : 0);
  const ms = (Date.now() % 2 ** 32 - t + 2 ** 32) % 2 ** 32;
  return ms < 60000 ? ms : null;
}

// --- one-shot WHIP/WHEP, kept for existing pages: no reconnection -------------------------------

function endpoint(kind, { app, stream, server = '', query = '' }) {
  const base = server || location.origin;
  const q = query ? (query.startsWith('?') ? query : '?' + query) : '';
  return `${base}/${kind}/${encodeURIComponent(app)}/${encodeURIComponent(stream)}${q}`;
}

function oneShot(pc, resource, etag, token, extra = {}) {
  return {
    pc, resource, etag, ...extra,
    async stop() {
      pc.close();
      await deleteResource(resource, token);
    },
  };
}

// Publishes `media` (a MediaStream) with WHIP. videoCodec ('H264', 'VP8', ...) is put first in
// the offer, which Estuary follows. Resolves to { pc, resource, stop() } once answered.
export async function publish({ app, stream, media, videoCodec, token, server, query }) {
  const pc = newPeerConnection();
  for (const track of media.getTracks()) {
    const tr = pc.addTransceiver(track, { direction: 'sendonly', streams: [media] });
    if (track.kind === 'video') preferCodec(tr, videoCodec);
  }
  await pc.setLocalDescription(await pc.createOffer());
  const res = await postOffer(endpoint('whip', { app, stream, server, query }), pc.localDescription.sdp, token);
  await pc.setRemoteDescription({ type: 'answer', sdp: res.answer });
  return oneShot(pc, res.resource, res.etag, token);
}

// Plays app/stream with WHEP into `video` (an HTMLVideoElement). Resolves to
// { pc, resource, media, stop() } once answered; media fills as tracks arrive.
export async function play({ app, stream, video, token, server, query }) {
  const pc = newPeerConnection();
  pc.addTransceiver('audio', { direction: 'recvonly' });
  pc.addTransceiver('video', { direction: 'recvonly' });
  const media = new MediaStream();
  pc.ontrack = (e) => {
    media.addTrack(e.track);
    if (video && video.srcObject !== media) video.srcObject = media;
  };
  await pc.setLocalDescription(await pc.createOffer());
  const res = await postOffer(endpoint('whep', { app, stream, server, query }), pc.localDescription.sdp, token);
  await pc.setRemoteDescription({ type: 'answer', sdp: res.answer });
  return oneShot(pc, res.resource, res.etag, token, { media });
}
