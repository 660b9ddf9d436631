// Estuary browser SDK: WHIP publish and WHEP play (RFC 9725 and the WHEP draft), plain
// RTCPeerConnection and fetch, no dependencies. Estuary is ICE-lite, so the offer is posted at
// once: the server needs none of the browser's candidates (it answers the browser's checks).
//
//   import { publish, play } from '/estuary.js';
//   const pub = await publish({ app: 'live', stream: 'cam', media: await getUserMedia(...) });
//   const p = await play({ app: 'live', stream: 'cam', video: document.querySelector('video') });
//   await pub.stop(); await p.stop();

function endpoint(kind, { app, stream, server = '', query = '' }) {
  const base = server || location.origin;
  const q = query ? (query.startsWith('?') ? query : '?' + query) : '';
  return `${base}/${kind}/${encodeURIComponent(app)}/${encodeURIComponent(stream)}${q}`;
}

async function exchange(url, pc, token) {
  const headers = { 'Content-Type': 'application/sdp' };
  if (token) headers.Authorization = `Bearer ${token}`;
  const res = await fetch(url, { method: 'POST', headers, body: pc.localDescription.sdp });
  const text = await res.text();
  if (res.status !== 201) {
    let reason = text;
    try { reason = JSON.parse(text).error; } catch { /* plain text */ }
    throw new Error(`${res.status}: ${reason}`);
  }
  const resource = new URL(res.headers.get('Location'), url).href;
  await pc.setRemoteDescription({ type: 'answer', sdp: text });
  return { resource, etag: res.headers.get('ETag') };
}

function session(pc, resource, etag, token, extra = {}) {
  return {
    pc, resource, etag, ...extra,
    async stop() {
      pc.close();
      const headers = token ? { Authorization: `Bearer ${token}` } : {};
      await fetch(resource, { method: 'DELETE', headers }).catch(() => {});
    },
  };
}

// Codecs the browser can send, for a codec picker: ['VP8', 'H264', 'VP9', 'AV1'].
export function videoCodecs() {
  const caps = RTCRtpSender.getCapabilities?.('video')?.codecs ?? [];
  const names = caps.map(c => c.mimeType.split('/')[1]).filter(n => !/rtx|red|ulpfec|flexfec/i.test(n));
  return [...new Set(names)];
}

// Publishes `media` (a MediaStream) with WHIP. videoCodec ('H264', 'VP8', ...) is put first in
// the offer, which Estuary follows. Resolves to { pc, resource, stop() } once answered.
export async function publish({ app, stream, media, videoCodec, token, server, query }) {
  const pc = new RTCPeerConnection({ iceServers: [], bundlePolicy: 'max-bundle' });
  for (const track of media.getTracks()) {
    const tr = pc.addTransceiver(track, { direction: 'sendonly', streams: [media] });
    if (track.kind === 'video' && videoCodec && tr.setCodecPreferences) {
      const all = RTCRtpSender.getCapabilities('video').codecs;
      const want = all.filter(c => c.mimeType.toLowerCase() === `video/${videoCodec.toLowerCase()}`);
      if (!want.length) throw new Error(`this browser cannot send ${videoCodec}`);
      tr.setCodecPreferences([...want, ...all.filter(c => !want.includes(c))]);
    }
  }
  await pc.setLocalDescription(await pc.createOffer());
  const { resource, etag } = await exchange(endpoint('whip', { app, stream, server, query }), pc, token);
  return session(pc, resource, etag, token);
}

// Plays app/stream with WHEP into `video` (an HTMLVideoElement). Resolves to
// { pc, resource, media, stop() } once answered; media fills as tracks arrive.
export async function play({ app, stream, video, token, server, query }) {
  const pc = new RTCPeerConnection({ iceServers: [], bundlePolicy: 'max-bundle' });
  pc.addTransceiver('audio', { direction: 'recvonly' });
  pc.addTransceiver('video', { direction: 'recvonly' });
  const media = new MediaStream();
  pc.ontrack = (e) => {
    media.addTrack(e.track);
    if (video && video.srcObject !== media) video.srcObject = media;
  };
  await pc.setLocalDescription(await pc.createOffer());
  const { resource, etag } = await exchange(endpoint('whep', { app, stream, server, query }), pc, token);
  return session(pc, resource, etag, token, { media });
}
