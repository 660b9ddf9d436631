// Every protocol admits through the same path (see test_admission.sh). Two parts, one per
// server configuration:
//   node test_admission.mjs main      apps without "*" (open, tok with tokens, hooked with
//                                     hooks), no api.token, HTTP and RTMP on 0.0.0.0
//     a) an unconfigured app, a missing token and a wrong token give the same refusal over WHIP,
//        WHEP, RTMP publish, RTMP play, HTTP-FLV and HLS: status and JSON error, what ffmpeg and
//        rtmpdump report, one admission line in the server log with the same reason; the
//        tokens admit over each protocol; the playlist of a protected app carries the token
//        into its segment URIs and ffmpeg decodes it, while the playlist and a segment without
//        the token are 401;
//     b) the admin API answers loopback only (403 from 192.0.2.2), without CORS headers;
//        /api/v1/streams keeps CORS and hides play_token apps from non-admin callers;
//     c) WHIP/WHEP resources /whip/{app}/{stream}/{16 hex}-{32 hex}: DELETE without or with a
//        wrong secret, under another app or stream, or through /whep/ is 404 and the session
//        stays; the right DELETE ends it;
//     d) on_publish/on_play hooks admit (2xx), refuse (403 with a reason that reaches the
//        client), or time out after hooks.timeout_ms (1 s) over all six; the hook's JSON body;
//        on_unpublish/on_stop when clients leave.
//   node test_admission.mjs apitoken  api.token "admintok", HTTP on 127.0.0.1
//     b) 401 without, 403 with a wrong, 200 with the right Bearer token; no CORS on the admin
//        API (nor its OPTIONS); /api/v1/streams lists the play_token app only to the admin.
// Environment (from test_admission.sh): ES_BASE, ES_PORT, ES_RTMP, ES_SERVER_LOG, ES_PEER_NS,
// ES_HOOK_LOG, ES_HOOK_RULES.
import { reporter } from './lib/browser.mjs';
import { decodeMedia } from './lib/proc.mjs';
import {
  request, peerRequest, corsHeaders, ffmpegPublish, ffmpegPlay, rtcPeer, serverLog,
  refusalLines, hookLog, run, sleep, RTC_PEER, rtmpProbe,
} from './lib/clients.mjs';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const part = process.argv[2] || 'main';
const base = process.env.ES_BASE;
const rtmp = `rtmp://127.0.0.1:${process.env.ES_RTMP}`;
const peerBase = `http://192.0.2.1:${process.env.ES_PORT}`;
const peerNs = process.env.ES_PEER_NS;
const hookFile = process.env.ES_HOOK_LOG;
const rulesFile = process.env.ES_HOOK_RULES;
const r = reporter();
const t0 = Date.now();
const note = (msg) => console.log(`# ${((Date.now() - t0) / 1000).toFixed(1)} s: ${msg}`);
const work = mkdtempSync(join(tmpdir(), 'estuary-admission-'));
const procs = [];
const short = (x) => JSON.stringify(x)?.slice(0, 400);

async function makeOffer(role) {
  const res = await run('/usr/bin/python3', [RTC_PEER, 'offer', role], 30000).done;
  if (!/^v=0/.test(res.out)) throw new Error(`no ${role} offer from aiortc: ${res.err}`);
  return res.out;
}

const sdpPost = (path, sdp, token, query = '') => request(`${base}${path}${query}`, {
  method: 'POST', body: sdp,
  headers: { 'Content-Type': 'application/sdp', ...(token ? { Authorization: `Bearer ${token}` } : {}) },
});

// The reason an RTMP client saw: ffmpeg prints the onStatus/_error description after "Server
// error: "; a publish/play refusal's description is "STREAM: REASON".
function rtmpReason(err, stream) {
  const m = err.match(/Server error: (.*)/);
  if (!m) return null;
  return m[1].startsWith(`${stream}: `) ? m[1].slice(stream.length + 2) : m[1];
}

async function waitStream(path, timeoutMs = 15000, test = (s) => s?.flv?.tags_in > 20) {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    const s = (await request(`${base}/api/v1/streams/${path}`)).json;
    if (test(s)) return s;
    await sleep(200);
  }
  return null;
}

async function waitPlaylist(url, headers = {}, segments = 2, timeoutMs = 25000) {
  const end = Date.now() + timeoutMs;
  let last = null;
  while (Date.now() < end) {
    last = await request(url, { headers });
    if (last.status === 200 && (last.text.match(/^#EXTINF:/gm) || []).length >= segments) return last;
    await sleep(300);
  }
  return last;
}

// --- a) the same refusal over every protocol -------------------------------------------------

// The server rate-limits each log call site (burst 20, then 5 lines a second): refusals are paced
// so that every one of them gets its line.
const PACE_MS = 250;
const TOKEN_HINT = '(Authorization: Bearer TOKEN, or ?token=TOKEN)';
const CASES = {
  app: { app: 'nosuch', token: null, status: 403, errtext: 'not authorized', reason: () => `app 'nosuch' is not configured` },
  missing: { app: 'tok', token: null, status: 401, errtext: 'authentication required', reason: (role) => `app tok needs a ${role} token ${TOKEN_HINT}` },
  wrong: { app: 'tok', token: 'bad', status: 403, errtext: 'not authorized', reason: (role) => `wrong ${role} token for app tok` },
};
const PROTOCOLS = [
  { name: 'whip', role: 'publish' }, { name: 'whep', role: 'play' }, { name: 'rtmp', role: 'publish', label: 'rtmp-publish' },
  { name: 'rtmp', role: 'play', label: 'rtmp-play' }, { name: 'http-flv', role: 'play' }, { name: 'hls', role: 'play' },
];

async function refusalCase(caseName, offers) {
  const c = CASES[caseName];
  const seen = {}; // role -> [reason, ...] from clients and the log
  const q = c.token ? `?token=${c.token}` : '';
  for (const p of PROTOCOLS) {
    const label = p.label || p.name;
    const stream = `${caseName}-${label}`;
    const want = c.reason(p.role);
    (seen[p.role] ||= []);
    let clientReason = null, detail = '';
    if (p.name === 'whip' || p.name === 'whep') {
      const res = await sdpPost(`/${p.name}/${c.app}/${stream}`, offers[p.role], c.token);
      clientReason = res.json?.error;
      detail = `${res.status} ${res.text}`;
      r.check(`a) ${caseName}: ${label} answers ${c.status} with error "${want}"`, res.status === c.status && clientReason === want, detail);
    } else if (p.name === 'http-flv' || p.name === 'hls') {
      const res = await request(`${base}/${c.app}/${stream}.${p.name === 'hls' ? 'm3u8' : 'flv'}${q}`, { timeoutMs: 5000 });
      clientReason = res.json?.error;
      detail = `${res.status} ${res.text}`;
      r.check(`a) ${caseName}: ${label} answers ${c.status} with error "${want}"`, res.status === c.status && clientReason === want, detail);
    } else {
      const res = p.role === 'publish' ? await ffmpegPublish(`${rtmp}/${c.app}/${stream}${q}`, 3).done
        : await ffmpegPlay(`${rtmp}/${c.app}/${stream}${q}`, 1);
      clientReason = rtmpReason(res.err, stream);
      detail = `exit ${res.code}: ${res.err.slice(0, 300)}`;
      r.check(`a) ${caseName}: ${label}: ffmpeg fails and reports "${want}"`, res.code !== 0 && clientReason === want, detail);
    }
    if (clientReason) seen[p.role].push(clientReason);
    await sleep(PACE_MS);
    // The server log: one admission line (RTMP to an unconfigured app is refused at connect).
    if (p.name === 'rtmp' && caseName === 'app') continue;
    const lines = refusalLines(c.app, stream);
    const l = lines[0];
    r.check(`a) ${caseName}: ${label}: one log line "admission: ... ${p.name} ${p.role} refused (${c.errtext}): ${want}"`,
      lines.length === 1 && l.proto === p.name && l.role === p.role && l.errtext === c.errtext && l.reason === want,
      lines.map(x => x.line).join(' | ') || 'no such line');
    if (l?.reason) seen[p.role].push(l.reason);
  }
  // What the server sends an RTMP client, decoded: _error to connect, or onStatus to publish/play.
  if (caseName === 'app') {
    const pr = await rtmpProbe('127.0.0.1', process.env.ES_RTMP, 'nosuch');
    const e = pr.commands.find(c => c[0] === '_error');
    r.check(`a) app: RTMP connect to app nosuch gets _error NetConnection.Connect.Rejected "${c.reason()}" and is closed`,
      e?.[3]?.code === 'NetConnection.Connect.Rejected' && e?.[3]?.description === c.reason() && e?.[3]?.level === 'error' && pr.closed === true, short(pr));
  } else {
    for (const role of ['publish', 'play']) {
      const stream = `${caseName}-probe-${role}`;
      const pr = await rtmpProbe('127.0.0.1', process.env.ES_RTMP, 'tok', role, `${stream}${q}`);
      const want = `${stream}: ${c.reason(role)}`;
      const code = role === 'publish' ? 'NetStream.Publish.Unauthorized' : 'NetStream.Play.Failed';
      r.check(`a) ${caseName}: RTMP ${role} gets onStatus error ${code} "${want}" and is closed`,
        pr.status?.level === 'error' && pr.status?.code === code && pr.status?.description === want && pr.closed === true, short(pr));
      if (pr.status?.description?.startsWith(`${stream}: `)) seen[role].push(pr.status.description.slice(stream.length + 2));
      await sleep(PACE_MS);
    }
  }
  // rtmpdump (librtmp) as a second RTMP player.
  const dstream = `${caseName}-rtmpdump`;
  const d = await run('timeout', ['-s', 'INT', '8', 'rtmpdump', '-r', `${rtmp}/${c.app}/${dstream}${q}`, '--live', '-o', '/dev/null'], 15000).done;
  await sleep(PACE_MS);
  const dOk = caseName === 'app' ? /server sent error/.test(d.err) : /NetStream\.Play\.Failed/.test(d.err);
  r.check(`a) ${caseName}: rtmpdump is refused (${caseName === 'app' ? '_error to connect' : 'NetStream.Play.Failed'}) and plays nothing`,
    dOk && !/Starting Live Stream/.test(d.err), d.err.slice(-300));
  if (caseName !== 'app') {
    const dl = refusalLines(c.app, dstream);
    r.check(`a) ${caseName}: rtmpdump's refusal is one admission line with the same reason`,
      dl.length === 1 && dl[0].reason === c.reason('play') && dl[0].errtext === c.errtext, dl.map(x => x.line).join(' | '));
  }
  for (const [role, reasons] of Object.entries(seen)) {
    const distinct = [...new Set(reasons)];
    r.check(`a) ${caseName}: every ${role} refusal, client side and log, has the same reason (${reasons.length} seen)`,
      distinct.length === 1 && reasons.length >= (caseName === 'app' ? (role === 'play' ? 7 : 3) : (role === 'play' ? 9 : 5)),
      JSON.stringify(distinct));
  }
}

async function partA(offers) {
  for (const c of Object.keys(CASES)) await refusalCase(c, offers);
  // RTMP to an unconfigured app: refused at connect, with the reason, and no admission line.
  const connectLines = serverLog().filter(l => / INFO +rtmp: .* connect refused: app 'nosuch' is not configured$/.test(l));
  const rtmpAdmission = serverLog().filter(l => / admission: .* stream=nosuch\/\S+ rtmp /.test(l));
  r.check(`a) app: each RTMP client to app nosuch is refused at connect ("rtmp: ... connect refused: app 'nosuch' is not configured", ${connectLines.length} lines for 4 clients) and has no admission line`,
    connectLines.length === 4 && rtmpAdmission.length === 0, [...connectLines, ...rtmpAdmission].join(' | '));
  // Bearer instead of ?token= for HTTP-FLV and HLS.
  for (const [kind, ext] of [['http-flv', 'flv'], ['hls', 'm3u8']]) {
    const res = await request(`${base}/tok/bearer-${kind}.${ext}`, { headers: { Authorization: 'Bearer bad' }, timeoutMs: 5000 });
    r.check(`a) ${kind} with "Authorization: Bearer bad": 403 "wrong play token for app tok"`,
      res.status === 403 && res.json?.error === 'wrong play token for app tok', `${res.status} ${res.text}`);
  }

  // The tokens admit, over every protocol, a real stream.
  note('tokens: ffmpeg publishes tok/live with ?token=pubtok');
  const pub = ffmpegPublish(`${rtmp}/tok/live?token=pubtok`, 75, { size: '640x360', rate: 30, gop: 30 });
  procs.push(pub.proc);
  const st = await waitStream('tok/live');
  r.check('a) RTMP publish with ?token=pubtok is admitted (tags flow)', !!st, (await Promise.race([pub.done, sleep(10)]))?.err);
  const rp = await ffmpegPlay(`${rtmp}/tok/live?token=playtok`, 1);
  r.check(`a) RTMP play with ?token=playtok decodes (${rp.frames} frames)`, rp.frames >= 10, rp.err.slice(0, 300));
  const fq = await ffmpegPlay(`${base}/tok/live.flv?token=playtok`, 1);
  r.check(`a) HTTP-FLV with ?token=playtok decodes (${fq.frames} frames)`, fq.frames >= 10, fq.err.slice(0, 300));
  const fbr = await run('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-headers', 'Authorization: Bearer playtok\r\n',
    '-i', `${base}/tok/live.flv`, '-t', '1', '-f', 'framecrc', '-'], 20000).done;
  const fb = { frames: (fbr.out.match(/^0,/gm) || []).length, err: fbr.err };
  r.check(`a) HTTP-FLV with "Authorization: Bearer playtok" decodes (${fb.frames} frames)`, fb.frames >= 10, fb.err.slice(0, 300));
  const wp = rtcPeer(['play', `${base}/whep/tok/live`, '3', '--token', 'playtok', '--delete']);
  procs.push(wp.proc);
  const wpa = await wp.next(['answered', 'refused'], 20000);
  const wpd = await wp.next('done', 30000);
  r.check(`a) WHEP with "Authorization: Bearer playtok" is admitted and decodes (${wpd?.video_frames} frames)`,
    wpa?.status === 201 && wpd?.video_frames > 10, short([wpa, wpd]) + wp.err.slice(-300));
  const wh = rtcPeer(['publish', `${base}/whip/tok/wlive`, '1', '--token', 'pubtok', '--delete']);
  procs.push(wh.proc);
  const wha = await wh.next(['answered', 'refused'], 20000);
  r.check('a) WHIP with "Authorization: Bearer pubtok" is admitted (201)', wha?.status === 201, short(wha));
  await wh.done;

  // HLS of the protected app: the token goes into the segment URIs.
  const purl = `${base}/tok/live.m3u8?token=playtok`;
  const pl = await waitPlaylist(purl);
  const uris = (pl?.text || '').split('\n').filter(l => l && !l.startsWith('#'));
  r.check(`a) HLS playlist with ?token=playtok: 200 with segments (${uris.length})`, pl?.status === 200 && uris.length >= 2, `${pl?.status} ${pl?.text?.slice(0, 300)}`);
  r.check('a) every segment URI of the protected playlist ends with ?token=playtok',
    uris.length > 0 && uris.every(u => u.endsWith('?token=playtok')), uris.join(' '));
  const plb = await request(`${base}/tok/live.m3u8`, { headers: { Authorization: 'Bearer playtok' } });
  const urisB = plb.text.split('\n').filter(l => l && !l.startsWith('#'));
  r.check('a) HLS playlist with "Authorization: Bearer playtok": 200, segment URIs carry ?token=playtok',
    plb.status === 200 && urisB.length > 0 && urisB.every(u => u.endsWith('?token=playtok')), `${plb.status} ${urisB.join(' ')}`);
  const seg = uris[uris.length - 1] || '';
  const segUrl = new URL(seg, purl);
  const segOk = await request(segUrl.href);
  const bare = new URL(segUrl.pathname, base).href;
  const segNo = await request(bare);
  const segBad = await request(`${bare}?token=bad`);
  r.check(`a) segment ${segUrl.pathname} with the token: 200 video/mp2t`, segOk.status === 200 && /mp2t|mp4/.test(segOk.headers['content-type'] || ''), `${segOk.status} ${segOk.headers['content-type']}`);
  r.check('a) the same segment without the token: 401; with a wrong one: 403',
    segNo.status === 401 && segBad.status === 403 && segNo.json?.error === CASES.missing.reason('play'), `${segNo.status} ${segNo.text} / ${segBad.status} ${segBad.text}`);
  const plNo = await request(`${base}/tok/live.m3u8`);
  r.check('a) the protected playlist without the token: 401', plNo.status === 401 && plNo.json?.error === CASES.missing.reason('play'), `${plNo.status} ${plNo.text}`);
  const m = await decodeMedia(purl, 3, join(work, 'hls'));
  r.check(`a) ffmpeg decodes the protected HLS with the token (${m.frames} frames in 3 s)`, m.frames >= 45, JSON.stringify(m));
  const probe = await run('ffprobe', ['-v', 'error', '-show_entries', 'stream=codec_name,width,height', '-of', 'json', purl], 20000).done;
  r.check('a) ffprobe of the protected HLS with the token: h264 640x360 and aac',
    /"h264"/.test(probe.out) && /"width": 640/.test(probe.out) && /"aac"/.test(probe.out), probe.out + probe.err);
  return pub;
}

// --- b) the admin API without api.token -------------------------------------------------------

async function partB() {
  const remote = await peerRequest(peerNs, `${peerBase}/api/v1/sessions`);
  r.check('b) GET /api/v1/sessions from 192.0.2.2 (no api.token): 403', remote.status === 403, `${remote.status} ${remote.text} ${remote.error || ''}`);
  r.check('b) ... without Access-Control-* headers', remote.status && corsHeaders(remote.headers).length === 0, JSON.stringify(remote.headers));
  const remoteOne = await peerRequest(peerNs, `${peerBase}/api/v1/sessions/0123456789abcdef`, { method: 'DELETE' });
  r.check('b) DELETE /api/v1/sessions/{id} from 192.0.2.2: 403', remoteOne.status === 403, `${remoteOne.status} ${remoteOne.text}`);
  const local = await request(`${base}/api/v1/sessions`);
  r.check('b) GET /api/v1/sessions from loopback (no api.token): 200 with the sessions', local.status === 200 && Array.isArray(local.json?.sessions), `${local.status} ${local.text.slice(0, 200)}`);
  r.check('b) ... without Access-Control-* headers', corsHeaders(local.headers).length === 0, JSON.stringify(local.headers));
  const opt = await request(`${base}/api/v1/sessions`, { method: 'OPTIONS' });
  r.check('b) OPTIONS /api/v1/sessions: no Access-Control-* headers', corsHeaders(opt.headers).length === 0, `${opt.status} ${JSON.stringify(opt.headers)}`);
  const optS = await request(`${base}/api/v1/streams`, { method: 'OPTIONS' });
  r.check('b) OPTIONS /api/v1/streams: a CORS preflight answer', optS.headers['access-control-allow-origin'] === '*' && !!optS.headers['access-control-allow-methods'], JSON.stringify(optS.headers));
  const streamsRemote = await peerRequest(peerNs, `${peerBase}/api/v1/streams`);
  const namesRemote = (streamsRemote.json?.streams || []).map(s => s.name);
  r.check('b) GET /api/v1/streams from 192.0.2.2: 200 with Access-Control-Allow-Origin',
    streamsRemote.status === 200 && streamsRemote.headers['access-control-allow-origin'] === '*', `${streamsRemote.status} ${JSON.stringify(streamsRemote.headers)}`);
  r.check(`b) ... lists the open stream hooked/cam but not tok/live (play_token) (${namesRemote.join(',')})`,
    namesRemote.includes('hooked/cam') && !namesRemote.includes('tok/live'), JSON.stringify(namesRemote));
  const oneRemote = await peerRequest(peerNs, `${peerBase}/api/v1/streams/tok/live`);
  r.check('b) GET /api/v1/streams/tok/live from 192.0.2.2: 404', oneRemote.status === 404, `${oneRemote.status} ${oneRemote.text}`);
  const streamsLocal = await request(`${base}/api/v1/streams`);
  const namesLocal = (streamsLocal.json?.streams || []).map(s => s.name);
  r.check(`b) GET /api/v1/streams from loopback (admin without api.token) lists tok/live (${namesLocal.join(',')})`,
    namesLocal.includes('tok/live') && namesLocal.includes('hooked/cam') && streamsLocal.headers['access-control-allow-origin'] === '*', JSON.stringify(namesLocal));
}

// --- c) WHIP/WHEP session resources ----------------------------------------------------------

// Live: listed, and not one of the ended sessions whose last view the API keeps a while.
async function sessionAlive(id) {
  const res = await request(`${base}/api/v1/sessions/${id}`);
  return res.status === 200 && res.json?.state !== 'ended';
}

async function partC() {
  const pub = rtcPeer(['publish', `${base}/whip/open/res`, '60']);
  procs.push(pub.proc);
  const a = await pub.next(['answered', 'refused'], 20000);
  const loc = a?.location || '';
  const m = loc.match(/^\/whip\/open\/res\/([0-9a-f]{16})-([0-9a-f]{32})$/);
  r.check(`c) WHIP 201 Location is /whip/{app}/{stream}/{16 hex}-{32 hex} (${loc})`, a?.status === 201 && !!m, short(a));
  if (!m) return;
  const [, id, secret] = m;
  await pub.next(['connected', 'not-connected'], 15000);
  r.check('c) the WHIP session is listed at /api/v1/sessions/{id}', await sessionAlive(id));
  const ply = rtcPeer(['play', `${base}/whep/open/res`, '60']);
  procs.push(ply.proc);
  const pa = await ply.next(['answered', 'refused'], 20000);
  const pm = (pa?.location || '').match(/^\/whep\/open\/res\/([0-9a-f]{16})-([0-9a-f]{32})$/);
  r.check(`c) WHEP 201 Location is /whep/{app}/{stream}/{16 hex}-{32 hex} (${pa?.location})`, pa?.status === 201 && !!pm, short(pa));
  const wrongSecret = secret.replace(/^./, ch => (ch === '0' ? '1' : '0'));
  const attempts = [
    ['DELETE', `/whip/open/res/${id}`, 'without the secret'],
    ['DELETE', `/whip/open/res/${id}-`, 'with an empty secret'],
    ['DELETE', `/whip/open/res/${id}-${wrongSecret}`, 'with a wrong secret'],
    ['DELETE', `/whip/open/res/${id}-${secret.slice(0, 31)}`, 'with a truncated secret'],
    ['DELETE', `/whip/tok/res/${id}-${secret}`, 'under another app'],
    ['DELETE', `/whip/open/other/${id}-${secret}`, 'under another stream'],
    ['DELETE', `/whep/open/res/${id}-${secret}`, 'through /whep/ for a /whip/ session'],
    ['PATCH', `/whip/open/res/${id}`, 'without the secret'],
    ['PATCH', `/whip/open/res/${id}-${wrongSecret}`, 'with a wrong secret'],
  ];
  for (const [method, path, what] of attempts) {
    const res = await request(base + path, { method, headers: method === 'PATCH' ? { 'Content-Type': 'application/trickle-ice-sdpfrag' } : {}, body: method === 'PATCH' ? 'a=ice-ufrag:x\r\na=ice-pwd:yyyyyyyyyyyyyyyyyyyyyy\r\n' : undefined });
    const alive = await sessionAlive(id);
    r.check(`c) ${method} ${what}: 404 and the session stays`, res.status === 404 && alive, `${res.status} ${res.text}; alive ${alive}`);
  }
  if (pm) {
    const res = await request(`${base}/whip/open/res/${pm[1]}-${pm[2]}`, { method: 'DELETE' });
    r.check('c) DELETE of the WHEP session through /whip/: 404 and it stays', res.status === 404 && await sessionAlive(pm[1]), `${res.status}`);
  }
  const del = await request(`${base}${loc}`, { method: 'DELETE' });
  let gone = false;
  for (let i = 0; i < 20 && !gone; i++) { gone = !(await sessionAlive(id)); if (!gone) await sleep(100); }
  r.check('c) DELETE of the Location: 200 and the session is gone', del.status === 200 && gone, `${del.status} ${del.text}; gone ${gone}`);
  const ended = await request(`${base}${loc}`);
  r.check('c) GET of the Location after the DELETE: the ended session and why', ended.status === 200 &&
    ended.json?.state === 'ended' && ended.json.ended_reason === 'DELETE from the client' &&
    ended.json.timeline?.at(-1)?.event === 'ended: DELETE from the client', `${ended.status} ${ended.text.slice(0, 300)}`);
  const again = await request(`${base}${loc}`, { method: 'DELETE' });
  r.check('c) a second DELETE of it: 404', again.status === 404, `${again.status}`);
  if (pm) {
    const d2 = await request(`${base}${pa.location}`, { method: 'DELETE' });
    r.check('c) DELETE of the WHEP Location: 200', d2.status === 200, `${d2.status} ${d2.text}`);
  }
  pub.stop(); ply.stop();
  await Promise.all([pub.done, ply.done]);
}

// --- d) hooks ---------------------------------------------------------------------------------

const setRules = (rules) => writeFileSync(rulesFile, JSON.stringify(rules));
const hooksFor = (pred) => hookLog(hookFile).filter(pred);

function bodyOk(h, action, protocol, stream, query) {
  return h && h.action === action && h.protocol === protocol && h.app === 'hooked' && h.stream === stream &&
    h.client_ip === '127.0.0.1' && /^127\.0\.0\.1:\d+$/.test(h.client) && typeof h.session_id === 'string' &&
    h.session_id.length > 0 && JSON.stringify(h.query) === JSON.stringify(query);
}

// One admission attempt of `proto` on hooked/STREAM?via=PROTO: { admitted, status, reason, ms, detail }.
async function attempt(proto, stream, offers) {
  const via = `via=${proto}`;
  if (proto === 'whip' || proto === 'whep') {
    const res = await sdpPost(`/${proto}/hooked/${stream}`, offers[proto === 'whip' ? 'publish' : 'play'], null, `?${via}`);
    if (res.status === 201) {
      const loc = res.headers.location;
      if (loc) await request(base + loc, { method: 'DELETE' });
    }
    return { admitted: res.status === 201, status: res.status, reason: res.json?.error, ms: res.ms, detail: `${res.status} ${res.text.slice(0, 200)}` };
  }
  if (proto === 'http-flv') {
    // Only refusals come here: an admitted player's body would never end (status 0 after 5 s).
    const res = await request(`${base}/hooked/${stream}.flv?${via}`, { timeoutMs: 5000 });
    return { admitted: res.status === 200 || res.status === 0, status: res.status, reason: res.json?.error, ms: res.ms, detail: `${res.status} ${res.text.slice(0, 200)} ${res.error || ''}` };
  }
  if (proto === 'hls') {
    const res = await request(`${base}/hooked/${stream}.m3u8?${via}`);
    return { admitted: res.status === 200, status: res.status, reason: res.json?.error, ms: res.ms, detail: `${res.status} ${res.text.slice(0, 200)}` };
  }
  if (proto === 'rtmp-publish') {
    const t = performance.now();
    const res = await ffmpegPublish(`${rtmp}/hooked/${stream}?via=rtmp`, 2).done;
    return { admitted: res.code === 0, reason: rtmpReason(res.err, stream), ms: performance.now() - t, detail: `exit ${res.code}: ${res.err.slice(0, 200)}` };
  }
  const res = await ffmpegPlay(`${rtmp}/hooked/${stream}?via=rtmp`, 1);
  return { admitted: res.frames > 0, reason: rtmpReason(res.err, stream), ms: res.ms, detail: `exit ${res.code}: ${res.err.slice(0, 200)}` };
}

const HOOK_PROTOS = [
  { proto: 'whip', wire: 'whip', action: 'on_publish' }, { proto: 'whep', wire: 'whep', action: 'on_play' },
  { proto: 'rtmp-publish', wire: 'rtmp', action: 'on_publish' }, { proto: 'rtmp-play', wire: 'rtmp', action: 'on_play' },
  { proto: 'http-flv', wire: 'http-flv', action: 'on_play' }, { proto: 'hls', wire: 'hls', action: 'on_play' },
];

async function partD(offers, midway) {
  setRules([]);
  // Publishers admitted by the hook: ffmpeg on hooked/cam (RTMP) and aiortc on hooked/wcam (WHIP).
  const cam = ffmpegPublish(`${rtmp}/hooked/cam?via=rtmp`, 80, { size: '320x180', rate: 15, gop: 15 });
  procs.push(cam.proc);
  const camInfo = await waitStream('hooked/cam');
  r.check('d) on_publish answering 200 admits an RTMP publisher (tags flow)', !!camInfo, (await Promise.race([cam.done, sleep(10)]))?.err);
  const h1 = hooksFor(h => h.action === 'on_publish' && h.protocol === 'rtmp' && h.stream === 'cam')[0];
  r.check('d) the on_publish hook got {action, protocol: rtmp, app, stream, client_ip, client, session_id, query}',
    bodyOk(h1, 'on_publish', 'rtmp', 'cam', { via: 'rtmp' }), short(h1));
  const wpub = rtcPeer(['publish', `${base}/whip/hooked/wcam?via=whip`, '3', '--delete']);
  procs.push(wpub.proc);
  const wa = await wpub.next(['answered', 'refused'], 20000);
  r.check('d) on_publish answering 200 admits a WHIP publisher (201)', wa?.status === 201, short(wa));
  const h2 = hooksFor(h => h.action === 'on_publish' && h.protocol === 'whip' && h.stream === 'wcam')[0];
  r.check('d) the WHIP on_publish hook body (protocol whip, query {via: whip})', bodyOk(h2, 'on_publish', 'whip', 'wcam', { via: 'whip' }), short(h2));
  const wplay = rtcPeer(['play', `${base}/whep/hooked/cam?via=whep`, '2', '--delete']);
  procs.push(wplay.proc);
  const wpa = await wplay.next(['answered', 'refused'], 20000);
  const wpd = await wplay.next('done', 30000);
  r.check(`d) on_play answering 200 admits a WHEP player, which decodes (${wpd?.video_frames} frames)`, wpa?.status === 201 && wpd?.video_frames > 0, short([wpa, wpd]));
  const rp = await ffmpegPlay(`${rtmp}/hooked/cam?via=rtmp`, 1);
  r.check(`d) on_play answering 200 admits an RTMP player (${rp.frames} frames)`, rp.frames > 5, rp.err.slice(0, 300));
  const fp = await ffmpegPlay(`${base}/hooked/cam.flv?via=http-flv`, 1);
  r.check(`d) on_play answering 200 admits an HTTP-FLV player (${fp.frames} frames)`, fp.frames > 5, fp.err.slice(0, 300));
  const hl = await waitPlaylist(`${base}/hooked/cam.m3u8?via=hls`, {}, 1);
  r.check('d) on_play answering 200 admits an HLS player (playlist 200)', hl?.status === 200, `${hl?.status} ${hl?.text?.slice(0, 200)}`);
  // An HLS player the hook admitted is remembered (address and stream) for 30 s: its next
  // playlist and segment requests do not ask the hook again.
  const hlsAsked = () => hooksFor(h => h.action === 'on_play' && h.protocol === 'hls' && h.stream === 'cam').length;
  const askedOnce = hlsAsked();
  const again = await request(`${base}/hooked/cam.m3u8?via=hls`);
  const seg = (again.text || '').split('\n').find(l => l && !l.startsWith('#'));
  const segRes = seg ? await request(`${base}/hooked/${seg.split('?')[0]}`) : null;
  r.check(`d) an admitted HLS player's next playlist and segment requests are not asked about again (${askedOnce} -> ${hlsAsked()})`,
    again.status === 200 && segRes?.status === 200 && hlsAsked() === askedOnce && askedOnce >= 1, `${again.status} ${segRes?.status} ${seg}`);
  await wpub.done;
  await midway(); // b) needs hooked/cam published
  await sleep(500); // on_stop / on_unpublish are told asynchronously
  for (const [action, wire, stream, query] of [['on_play', 'whep', 'cam', { via: 'whep' }], ['on_play', 'rtmp', 'cam', { via: 'rtmp' }],
    ['on_play', 'http-flv', 'cam', { via: 'http-flv' }], ['on_play', 'hls', 'cam', { via: 'hls' }]]) {
    const h = hooksFor(x => x.action === action && x.protocol === wire && x.stream === stream)[0];
    r.check(`d) the ${wire} on_play hook body (query {via: ${wire}})`, bodyOk(h, action, wire, stream, query), short(h));
  }
  for (const [action, wire, stream] of [['on_unpublish', 'whip', 'wcam'], ['on_stop', 'whep', 'cam'], ['on_stop', 'rtmp', 'cam'], ['on_stop', 'http-flv', 'cam']]) {
    const h = hooksFor(x => x.action === action && x.protocol === wire && x.stream === stream)[0];
    r.check(`d) ${action} is POSTed when the ${wire} ${action === 'on_stop' ? 'player' : 'publisher'} leaves`,
      h && h.app === 'hooked' && h.client_ip === '127.0.0.1' && typeof h.session_id === 'string' && h.session_id.length > 0, short(h));
  }
  // Informational: does a leaving client's session_id match the one its admission hook got?
  for (const [wire, a1, a2, stream] of [['whip', 'on_publish', 'on_unpublish', 'wcam'], ['whep', 'on_play', 'on_stop', 'cam'], ['rtmp', 'on_play', 'on_stop', 'cam'], ['http-flv', 'on_play', 'on_stop', 'cam']]) {
    const x = hooksFor(h => h.action === a1 && h.protocol === wire && h.stream === stream).map(h => h.session_id);
    const y = hooksFor(h => h.action === a2 && h.protocol === wire && h.stream === stream).map(h => h.session_id);
    note(`${wire}: ${a1} session_id ${x.join(',')} / ${a2} session_id ${y.join(',')}${y.some(id => x.includes(id)) ? '' : ' (differ)'}`);
  }

  // Refusing hooks: 403 {"reason": "no such camera"}.
  setRules([{ action: 'on_publish', answer: 'refuse', reason: 'no such camera' }, { action: 'on_play', answer: 'refuse', reason: 'no such camera' }]);
  await sleep(100);
  for (const { proto, wire, action } of HOOK_PROTOS) {
    // HLS players are remembered once admitted (above): a stream no hook admitted yet
    const stream = action === 'on_publish' ? `deny-${wire}` : wire === 'hls' ? 'deny-hls' : 'cam';
    const want = `refused by the ${action} hook: no such camera`;
    const before = hooksFor(h => h.action === action && h.protocol === wire && h._answer === 'refuse').length;
    const res = await attempt(proto, stream, offers);
    const http = !proto.startsWith('rtmp');
    r.check(`d) ${proto}: a hook answering 403 refuses${http ? ' with 403' : ''} and the reason "${want}" reaches the client`,
      !res.admitted && res.reason === want && (!http || res.status === 403), res.detail);
    const asked = hooksFor(h => h.action === action && h.protocol === wire && h._answer === 'refuse').length;
    r.check(`d) ${proto}: the ${action} hook was asked`, asked > before, `${before} -> ${asked}`);
    const lines = refusalLines('hooked', stream).filter(l => l.proto === wire && l.reason === want);
    r.check(`d) ${proto}: the refusal is an admission line "${wire} ${action === 'on_publish' ? 'publish' : 'play'} refused (not authorized): ${want}"`,
      lines.length >= 1 && lines.every(l => l.errtext === 'not authorized'), lines.map(l => l.line).join(' | ') || 'no such line');
    if (proto.startsWith('rtmp')) {
      const role = action === 'on_publish' ? 'publish' : 'play';
      const pr = await rtmpProbe('127.0.0.1', process.env.ES_RTMP, 'hooked', role, `${stream}?via=probe`);
      r.check(`d) ${proto}: the onStatus (level error) description carries "${want}" (${pr.status?.code})`,
        pr.status?.level === 'error' && (pr.status?.description || '').includes(want), short(pr));
    }
    await sleep(PACE_MS);
  }

  // Hanging hooks: refused after hooks.timeout_ms (1000 ms), not before, and within ~3 s. Over
  // HTTP the request's own time says it; an RTMP client's time also holds its connection set-up,
  // so "not before" is measured there from the hook's receipt to the server's refusal line.
  setRules([{ action: 'on_publish', answer: 'hang' }, { action: 'on_play', answer: 'hang' }]);
  await sleep(100);
  for (const { proto, wire, action } of HOOK_PROTOS) {
    const stream = action === 'on_publish' ? `hang-${wire}` : wire === 'hls' ? 'hang-hls' : 'cam';
    const want = `the ${action} hook did not answer within hooks.timeout_ms`;
    const res = await attempt(proto, stream, offers);
    const http = !proto.startsWith('rtmp');
    const lines = refusalLines('hooked', stream).filter(l => l.proto === wire && l.reason === want);
    let waited = res.ms;
    if (!http) {
      const asked = hooksFor(h => h.action === action && h.protocol === wire && h.stream === stream && h._answer === 'hang').pop();
      const at = lines.length ? Date.parse(lines[lines.length - 1].line.split(' ')[0]) : NaN;
      waited = asked ? at - asked._received * 1000 : NaN;
    }
    r.check(`d) ${proto}: a hook that hangs refuses${http ? ' with 403' : ''} "${want}" ${waited.toFixed(0)} ms after asking it (950-3000), the client waited ${(res.ms / 1000).toFixed(2)} s (<= 3)`,
      !res.admitted && res.reason === want && (!http || res.status === 403) && waited >= 950 && waited <= 3000 && res.ms <= 3000, `${res.detail} ms ${res.ms}`);
    r.check(`d) ${proto}: the time-out is an admission line "${wire} ${action === 'on_publish' ? 'publish' : 'play'} refused (not authorized): ${want}"`,
      lines.length >= 1 && lines.every(l => l.errtext === 'not authorized'), lines.map(l => l.line).join(' | ') || 'no such line');
  }
  setRules([]);
  // The RTMP publisher leaves: on_unpublish.
  cam.proc.kill('SIGTERM');
  await cam.done;
  await sleep(1000);
  const hu = hooksFor(x => x.action === 'on_unpublish' && x.protocol === 'rtmp' && x.stream === 'cam')[0];
  r.check('d) on_unpublish is POSTed when the RTMP publisher leaves', hu && hu.app === 'hooked' && hu.client_ip === '127.0.0.1' && !!hu.session_id, short(hu));
}

// --- the api.token server ---------------------------------------------------------------------

async function apiToken() {
  const pub = ffmpegPublish(`${rtmp}/tok/live?token=pubtok`, 30);
  procs.push(pub.proc);
  for (let i = 0; i < 50; i++) {
    const s = await request(`${base}/api/v1/streams/tok/live`, { headers: { Authorization: 'Bearer admintok' } });
    if (s.json?.flv?.tags_in > 10) break;
    await sleep(200);
  }
  const none = await request(`${base}/api/v1/sessions`);
  const wrong = await request(`${base}/api/v1/sessions`, { headers: { Authorization: 'Bearer nottheone' } });
  const right = await request(`${base}/api/v1/sessions`, { headers: { Authorization: 'Bearer admintok' } });
  r.check('b) api.token set: GET /api/v1/sessions without Authorization (from loopback): 401', none.status === 401, `${none.status} ${none.text}`);
  r.check('b) ... with a wrong Bearer token: 403', wrong.status === 403, `${wrong.status} ${wrong.text}`);
  r.check('b) ... with "Authorization: Bearer admintok": 200 with the RTMP publisher', right.status === 200 &&
    (right.json?.sessions || []).some(s => s.stream === 'live' && s.role === 'publisher'), `${right.status} ${right.text.slice(0, 300)}`);
  r.check('b) none of the three answers has Access-Control-* headers',
    [none, wrong, right].every(x => x.status && corsHeaders(x.headers).length === 0), JSON.stringify([none, wrong, right].map(x => x.headers)));
  const opt = await request(`${base}/api/v1/sessions`, { method: 'OPTIONS' });
  r.check('b) OPTIONS /api/v1/sessions: no Access-Control-* headers', corsHeaders(opt.headers).length === 0, `${opt.status} ${JSON.stringify(opt.headers)}`);
  const kickNo = await request(`${base}/api/v1/sessions/0123456789abcdef`, { method: 'DELETE' });
  r.check('b) DELETE /api/v1/sessions/{id} without the token: 401', kickNo.status === 401, `${kickNo.status}`);
  const streams = await request(`${base}/api/v1/streams`);
  const names = (streams.json?.streams || []).map(s => s.name);
  r.check('b) /api/v1/streams keeps Access-Control-Allow-Origin', streams.status === 200 && streams.headers['access-control-allow-origin'] === '*', JSON.stringify(streams.headers));
  r.check(`b) /api/v1/streams without the admin token does not list tok/live (play_token) (${names.join(',')})`, streams.status === 200 && !names.includes('tok/live') && names.includes('open/live'), JSON.stringify(names));
  const one = await request(`${base}/api/v1/streams/tok/live`);
  r.check('b) /api/v1/streams/tok/live without the admin token: 404', one.status === 404, `${one.status}`);
  const streamsA = await request(`${base}/api/v1/streams`, { headers: { Authorization: 'Bearer admintok' } });
  const namesA = (streamsA.json?.streams || []).map(s => s.name);
  r.check(`b) /api/v1/streams with the admin token lists tok/live (${namesA.join(',')})`, namesA.includes('tok/live'), JSON.stringify(namesA));
  const wrongA = await request(`${base}/api/v1/streams`, { headers: { Authorization: 'Bearer nottheone' } });
  r.check('b) /api/v1/streams with a wrong admin token does not list tok/live', !(wrongA.json?.streams || []).some(s => s.name === 'tok/live'), wrongA.text.slice(0, 300));
  pub.proc.kill('SIGTERM');
  await pub.done;
}

try {
  if (part === 'apitoken') {
    // A stream of an app without token too, so that the listing is not empty for everyone.
    const open = ffmpegPublish(`${rtmp}/open/live`, 30);
    procs.push(open.proc);
    await waitStream('open/live', 15000, (s) => !!s);
    await apiToken();
  } else {
    const offers = { publish: await makeOffer('publish'), play: await makeOffer('play') };
    note('a) refusals');
    const pubTok = await partA(offers);
    note('d) hooks, with b) the admin API while hooked/cam and tok/live are published');
    await partD(offers, async () => { note('b) admin API'); await partB(); note('d) hooks again'); });
    pubTok.proc.kill('SIGTERM');
    note('c) session resources');
    await partC();
  }
} catch (e) {
  r.check('test ran to the end', false, e.stack);
} finally {
  for (const p of procs) { try { p.kill('SIGKILL'); } catch { /* gone */ } }
  rmSync(work, { recursive: true, force: true });
}
note('done');
process.exit(r.done());
