// GET /metrics during a live stream: an FFmpeg RTMP publisher (H.264 + AAC, 640x360 at 30 fps)
// and an aiortc WHEP player that sends a few NACKs a second. Checks:
//   - the endpoint is on the admin API (401 without the token) and answers text/plain;
//     version=0.0.4 whose every line parses (HELP and TYPE before a family's samples, no series
//     twice, histogram buckets cumulative and ending at +Inf = _count);
//   - gauges: one stream, its ingest bitrate (> 100 kbit/s), one WebRTC player of it, the
//     sessions by protocol/signaling/role (whep player, rtmp publisher), a transcoder (AAC to
//     Opus for the player), the process's memory and descriptors;
//   - counters move between two scrapes 3 s apart: RTP and UDP sent, CPU seconds, NACKs received
//     and retransmissions sent, receiver-report histograms (loss, jitter, RTT), HLS segments,
//     GSO trains (the RTMP bridge makes a frame's packets at once); no SRTP errors;
//   - when the player leaves, its session is no longer counted.
// Usage: node test_metrics.mjs BASE_URL UDP_PORT RTMP_PORT
import { reporter } from './lib/browser.mjs';
import { ffmpegPublish, request, rtcPeer } from './lib/clients.mjs';
import { sleep, waitFor } from './lib/proc.mjs';

const [base, , rtmpPort] = process.argv.slice(2);
const TOKEN = process.env.METRICS_TOKEN;
const r = reporter();
const admin = { Authorization: `Bearer ${TOKEN}` };

// Parses the text format into { samples: Map(series -> value), types: Map(family -> type),
// errors: [] }.
function parse(text) {
  const samples = new Map(), types = new Map(), helps = new Set(), errors = [];
  const lineRe = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*\})? (-?[0-9.eE+-]+|NaN|\+Inf|-Inf)$/;
  for (const line of text.split('\n')) {
    if (line === '') continue;
    let m;
    if ((m = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) .+$/.exec(line))) { helps.add(m[1]); continue; }
    if ((m = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line))) {
      if (types.has(m[1])) errors.push(`TYPE twice: ${m[1]}`);
      types.set(m[1], m[2]);
      continue;
    }
    if (line.startsWith('#')) { errors.push(`bad comment: ${line}`); continue; }
    m = lineRe.exec(line);
    if (!m) { errors.push(`bad line: ${line}`); continue; }
    const series = m[1] + (m[2] || '');
    const family = m[1].replace(/_(bucket|sum|count)$/, '');
    if (!types.has(m[1]) && !(types.get(family) === 'histogram')) errors.push(`no TYPE before ${m[1]}`);
    if (!helps.has(m[1]) && !helps.has(family)) errors.push(`no HELP for ${m[1]}`);
    if (samples.has(series)) errors.push(`series twice: ${series}`);
    samples.set(series, Number(m[3]));
  }
  // histograms: cumulative buckets, +Inf equal to _count
  for (const [fam, type] of types) {
    if (type !== 'histogram') continue;
    const buckets = [...samples].filter(([k]) => k.startsWith(`${fam}_bucket{`));
    let prev = -1;
    for (const [, v] of buckets) { if (v < prev) errors.push(`${fam} buckets not cumulative`); prev = v; }
    const inf = samples.get(`${fam}_bucket{le="+Inf"}`), count = samples.get(`${fam}_count`);
    if (inf === undefined || inf !== count) errors.push(`${fam}: +Inf ${inf} != _count ${count}`);
  }
  return { samples, types, errors };
}

async function scrape() {
  const res = await request(`${base}/metrics`, { headers: admin });
  return { status: res.status, type: res.headers?.['content-type'] || '', ...parse(res.text || '') };
}
const v = (s, series) => s.samples.get(series);

const unauth = await request(`${base}/metrics`);
r.check('/metrics without the admin token is refused (401)', unauth.status === 401, `status ${unauth.status}`);

const pub = ffmpegPublish(`rtmp://127.0.0.1:${rtmpPort}/live/m`, 40, { size: '640x360', rate: 30, gop: 30 });
await waitFor('the stream', async () => (await request(`${base}/api/v1/streams/live/m`)).status === 200, 15000).catch(() => {});
const player = rtcPeer(['play', `${base}/whep/live/m`, '25', '--nack-storm', '2', '--nack-span', '4']);
const connected = await player.next(['connected', 'not-connected', 'refused'], 20000);
r.check('the aiortc WHEP player connects', connected?.event === 'connected', JSON.stringify(connected));
await sleep(5000);
const a = await scrape();
await sleep(3000);
const b = await scrape();

r.check('200 text/plain; version=0.0.4', a.status === 200 && /^text\/plain; version=0\.0\.4/.test(a.type), `${a.status} ${a.type}`);
r.check('every line parses (HELP/TYPE, no duplicates, histograms consistent)', a.errors.length === 0 && b.errors.length === 0,
  [...a.errors, ...b.errors].slice(0, 5).join('; '));
r.check('estuary_streams is 1', v(b, 'estuary_streams') === 1, v(b, 'estuary_streams'));
const ingest = v(b, 'estuary_stream_ingest_bits_per_second{stream="live/m",source="rtmp"}');
r.check('the stream\'s ingest bitrate is over 100 kbit/s', ingest > 100000, ingest);
r.check('one WebRTC player of the stream', v(b, 'estuary_stream_players{stream="live/m",protocol="webrtc"}') === 1,
  v(b, 'estuary_stream_players{stream="live/m",protocol="webrtc"}'));
r.check('sessions: one whep player, one rtmp publisher',
  v(b, 'estuary_sessions{protocol="webrtc",signaling="whep",role="player"}') === 1 &&
  v(b, 'estuary_sessions{protocol="rtmp",signaling="rtmp",role="publisher"}') === 1,
  [...b.samples].filter(([k]) => k.startsWith('estuary_sessions{')).map(x => x.join('=')).join(' '));
r.check('a transcoder runs (AAC to Opus for the player)', v(b, 'estuary_transcoders') >= 1, v(b, 'estuary_transcoders'));
r.check('process memory and descriptors', v(b, 'process_resident_memory_bytes') > 1e6 && v(b, 'process_open_fds') > 3 &&
  v(b, 'process_max_fds') >= v(b, 'process_open_fds'), `${v(b, 'process_resident_memory_bytes')} ${v(b, 'process_open_fds')}`);
const grew = (name, min = 1) => {
  const d = v(b, name) - v(a, name);
  r.check(`${name} grew (by ${d})`, d >= min, `${v(a, name)} -> ${v(b, name)}`);
  return d;
};
const rtp = grew('estuary_rtp_sent_packets_total', 60); // ~3 s of 30 fps video and Opus audio
grew('estuary_rtp_sent_bytes_total', 30000);
const udp = grew('estuary_udp_sent_packets_total', 60);
r.check('UDP datagrams sent cover the RTP sent', udp >= rtp, `${udp} < ${rtp}`);
grew('estuary_udp_received_packets_total', 1); // the player's RTCP and consent checks
grew('process_cpu_seconds_total', 0.001);
grew('estuary_nacks_received_total', 1);
grew('estuary_retransmissions_sent_total', 1);
grew('estuary_player_loss_ratio_count', 1);
grew('estuary_player_jitter_seconds_count', 1);
r.check('RTT observed from the player\'s receiver reports', v(b, 'estuary_player_rtt_seconds_count') >= 1 &&
  v(b, 'estuary_player_rtt_seconds_sum') / v(b, 'estuary_player_rtt_seconds_count') < 0.5,
  `${v(b, 'estuary_player_rtt_seconds_count')} ${v(b, 'estuary_player_rtt_seconds_sum')}`);
grew('estuary_hls_segments_total', 1);
r.check('GSO trains went out (a frame\'s packets to the player)', v(b, 'estuary_udp_gso_trains_total') >= 1,
  v(b, 'estuary_udp_gso_trains_total'));
r.check('no SRTP errors', v(b, 'estuary_srtp_errors_total') === 0, v(b, 'estuary_srtp_errors_total'));
r.check('nothing dropped for send refusals', v(b, 'estuary_dropped_total{reason="udp_send_refused"}') === 0,
  v(b, 'estuary_dropped_total{reason="udp_send_refused"}'));

await player.stop();
let c = null;
for (let i = 0; i < 25; i++) {
  c = await scrape();
  if ((v(c, 'estuary_sessions{protocol="webrtc",signaling="whep",role="player"}') ?? 0) === 0) break;
  await sleep(200);
}
r.check('the player that left is no longer counted',
  (v(c, 'estuary_sessions{protocol="webrtc",signaling="whep",role="player"}') ?? 0) === 0 &&
  v(c, 'estuary_stream_players{stream="live/m",protocol="webrtc"}') === 0,
  [...c.samples].filter(([k]) => k.startsWith('estuary_sessions{')).map(x => x.join('=')).join(' '));
pub.proc.kill('SIGTERM');
await pub.done;
process.exit(r.done());
