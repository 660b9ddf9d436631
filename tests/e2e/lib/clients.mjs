// Clients for the admission and hostile-client tests (test_admission, test_hostile): HTTP
// requests that keep status, headers, JSON and time; the same through curl inside another
// network namespace; FFmpeg publishers; rtc_peer.py sessions read event by event; the server's
// log and the hook server's log.
import { run, sleep } from './proc.mjs';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const RTC_PEER = join(here, '..', 'rtc_peer.py');
export const RTMP_PROBE = join(here, '..', 'rtmp_probe.py');

// One HTTP request with fetch: { status, headers (lower-case names), text, json, ms }; status 0
// and `error` when it failed. Never throws; bounded by timeoutMs.
export async function request(url, { method = 'GET', headers = {}, body, timeoutMs = 10000 } = {}) {
  const t0 = performance.now();
  try {
    const res = await fetch(url, { method, headers, body, signal: AbortSignal.timeout(timeoutMs), redirect: 'manual' });
    const text = await res.text();
    let json = null;
    try { json = JSON.parse(text); } catch { /* not JSON */ }
    return { status: res.status, headers: Object.fromEntries(res.headers), text, json, ms: performance.now() - t0 };
  } catch (e) {
    return { status: 0, headers: {}, text: '', json: null, ms: performance.now() - t0, error: String(e.cause || e) };
  }
}

// The same with curl run in the network namespace `ns` (a /proc/PID/ns/net path), for a client
// with another address.
export async function peerRequest(ns, url, { method = 'GET', headers = {}, timeoutMs = 10000 } = {}) {
  const args = [`--net=${ns}`, 'curl', '-s', '-i', '--max-time', String(timeoutMs / 1000), '-X', method];
  for (const [k, v] of Object.entries(headers)) args.push('-H', `${k}: ${v}`);
  args.push(url);
  const t0 = performance.now();
  const res = await run('nsenter', args, timeoutMs + 5000).done;
  const ms = performance.now() - t0;
  const out = res.out;
  const split = out.indexOf('\r\n\r\n');
  const head = split >= 0 ? out.slice(0, split) : out;
  const text = split >= 0 ? out.slice(split + 4) : '';
  const lines = head.split('\r\n');
  const status = Number((lines[0] || '').split(' ')[1]) || 0;
  const hdrs = {};
  for (const l of lines.slice(1)) {
    const i = l.indexOf(':');
    if (i > 0) hdrs[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status, headers: hdrs, text, json, ms, error: res.code ? `curl exit ${res.code}: ${res.err}` : undefined };
}

export const corsHeaders = (h) => Object.keys(h).filter(k => k.startsWith('access-control-'));

// FFmpeg publishing a test pattern (H.264, no B-frames) and a tone (AAC) over RTMP for `seconds`;
// `prefix` runs it through another command (e.g. ['nsenter', '--net=...']).
export function ffmpegPublish(url, seconds, { size = '320x180', rate = 15, gop = rate, prefix = [] } = {}) {
  const args = ['-hide_banner', '-loglevel', 'error', '-re',
    '-f', 'lavfi', '-i', `testsrc2=size=${size}:rate=${rate}`, '-f', 'lavfi', '-i', 'sine=frequency=1000:sample_rate=44100',
    '-c:v', 'libx264', '-preset', 'ultrafast', '-tune', 'zerolatency', '-bf', '0', '-g', String(gop),
    '-pix_fmt', 'yuv420p', '-c:a', 'aac', '-t', String(seconds), '-f', 'flv', url];
  return prefix.length ? run(prefix[0], [...prefix.slice(1), 'ffmpeg', ...args], (seconds + 30) * 1000)
    : run('ffmpeg', args, (seconds + 30) * 1000);
}

// ffmpeg reading `url` for `seconds` into nothing: { code, err, frames, ms }.
export async function ffmpegPlay(url, seconds = 1, { prefix = [], timeoutMs = 20000 } = {}) {
  const args = ['-hide_banner', '-loglevel', 'error', '-rw_timeout', '8000000', '-i', url, '-map', '0:v:0?',
    '-t', String(seconds), '-f', 'framecrc', '-'];
  const t0 = performance.now();
  const res = await (prefix.length ? run(prefix[0], [...prefix.slice(1), 'ffmpeg', ...args], timeoutMs)
    : run('ffmpeg', args, timeoutMs)).done;
  return { code: res.code, err: res.err.trim(), frames: (res.out.match(/^0,/gm) || []).length, ms: performance.now() - t0 };
}

// rtc_peer.py as a child process whose JSON lines are collected; next(event, ms) waits for the
// first line with that event not taken yet.
export function rtcPeer(args, { prefix = [], timeoutMs = 120000 } = {}) {
  const cmd = prefix.length ? prefix[0] : '/usr/bin/python3';
  const argv = prefix.length ? [...prefix.slice(1), '/usr/bin/python3', RTC_PEER, ...args] : [RTC_PEER, ...args];
  const p = spawn(cmd, argv);
  const events = [];
  let buf = '', err = '';
  const waiters = [];
  p.stdout.on('data', d => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      try { events.push(JSON.parse(line)); } catch { events.push({ event: 'text', line }); }
      for (const w of waiters.splice(0)) w();
    }
  });
  p.stderr.on('data', d => { err += d; });
  const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
  const done = new Promise(res => p.on('close', code => { clearTimeout(timer); for (const w of waiters.splice(0)) w(); res(code); }));
  let exited = false;
  done.then(() => { exited = true; });
  return {
    proc: p, events, done,
    get err() { return err; },
    // The first event named one of `names` (array or string), or null after ms.
    async next(names, ms = 15000) {
      const want = [].concat(names);
      const end = Date.now() + ms;
      for (;;) {
        const e = events.find(x => want.includes(x.event) && !x.taken);
        if (e) { e.taken = true; return e; }
        if (exited || Date.now() >= end) return null;
        await Promise.race([new Promise(r => waiters.push(r)), sleep(Math.max(1, end - Date.now()))]);
      }
    },
    stop() { try { p.kill('SIGTERM'); } catch { /* gone */ } return done; },
  };
}

// rtmp_probe.py: connect to `app` (then publish/play `name`), the AMF0 commands the server sent
// back: { commands: [[name, txn, ...]], closed }, plus `status`: the last onStatus/_error info
// object ({ level, code, description }) or null.
export async function rtmpProbe(host, port, app, action = null, name = null, { seconds = 2, prefix = [] } = {}) {
  const args = [RTMP_PROBE, host, String(port), app, ...(action ? [action, name] : []), '--seconds', String(seconds)];
  const res = await (prefix.length ? run(prefix[0], [...prefix.slice(1), '/usr/bin/python3', ...args], (seconds + 10) * 1000)
    : run('/usr/bin/python3', args, (seconds + 10) * 1000)).done;
  let out;
  try { out = JSON.parse(res.out.trim().split('\n').pop()); } catch { return { commands: [], closed: null, status: null, error: res.err.slice(-300) }; }
  const infos = out.commands.filter(c => c[0] === 'onStatus' || c[0] === '_error').map(c => c[3]).filter(x => x && typeof x === 'object');
  return { ...out, status: infos.length ? infos[infos.length - 1] : null };
}

// The server log's lines (ES_SERVER_LOG).
export function serverLog() {
  const f = process.env.ES_SERVER_LOG;
  return f && existsSync(f) ? readFileSync(f, 'utf8').split('\n') : [];
}

// Admission refusal lines of the form
//   ... INFO  admission: peer=P remote=R stream=APP/STREAM PROTO ROLE refused (ERRTEXT): REASON
// for app/stream: [{ line, proto, role, errtext, reason }].
export function refusalLines(app, stream) {
  const out = [];
  for (const line of serverLog()) {
    if (!/ INFO +admission: /.test(line) || !line.includes(` stream=${app}/${stream} `)) continue;
    // A line after others of its call site were rate-limited ends with "(N similar lines suppressed)".
    const m = line.match(/ (whip|whep|rtmp|http-flv|hls) (publish|play) refused \(([^)]*)\): (.*?)( \(\d+ similar lines suppressed\))?$/);
    out.push(m ? { line, proto: m[1], role: m[2], errtext: m[3], reason: m[4] } : { line });
  }
  return out;
}

// The hook server's log: one object per request.
export function hookLog(file) {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8').split('\n').filter(Boolean).map(l => { try { return JSON.parse(l); } catch { return { _bad: l }; } });
}

export { run, sleep };
