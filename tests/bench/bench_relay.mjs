// The driver of tests/bench/bench_relay.sh: servers A and B, the RTMP publisher, the relay, and
// RUNS runs of relay_probe.py. Usage: node bench_relay.mjs BUILD_DIR RUNS SECONDS
import { run, sleep, waitFor } from '../e2e/lib/proc.mjs';
import { startServer, stopAll } from '../e2e/lib/servers.mjs';
import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const [buildDir, runs, seconds] = process.argv.slice(2);
const here = fileURLToPath(new URL('.', import.meta.url));
const apps = 'apps:\n  live: {}';
const A = await startServer(`${buildDir}/estuary`, 'A', apps);
const B = await startServer(`${buildDir}/estuary`, 'B', apps);
let status = 1;
// The stream is encoded once beforehand and sent with -c copy, so that no encoder competes with
// the servers and the probe for the two cores.
const media = join(tmpdir(), `estuary-bench-relay-${process.pid}.flv`);
const enc = await run('ffmpeg', ['-hide_banner', '-loglevel', 'error',
  '-f', 'lavfi', '-i', 'testsrc2=size=1280x720:rate=30', '-f', 'lavfi', '-i', 'sine=frequency=1000:sample_rate=48000',
  '-t', '30', '-c:v', 'libx264', '-profile:v', 'baseline', '-preset', 'veryfast', '-tune', 'zerolatency', '-bf', '0', '-g', '60',
  '-b:v', '2500k', '-maxrate', '2500k', '-bufsize', '1000k', '-pix_fmt', 'yuv420p',
  '-c:a', 'aac', '-b:a', '96k', '-f', 'flv', '-y', media], 300000).done;
if (enc.code !== 0) throw new Error(`ffmpeg encode: ${enc.err}`);
const ff = spawn('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-re', '-stream_loop', '-1', '-i', media,
  '-c', 'copy', '-t', String(Number(runs) * (Number(seconds) + 10) + 30), '-f', 'flv',
  `rtmp://127.0.0.1:${A.rtmp}/live/bench`], { stdio: 'ignore' });
try {
  await waitFor('A publishing', async () => ((await A.json('/api/v1/streams/live/bench')).packets_in > 100) || null, 20000);
  const res = await B.post('/rest-api/pull/pull', { uri: A.base, localStreamName: 'live/bench', remoteStreamName: 'live/bench' });
  if (res.status !== 200) throw new Error(`pull: ${res.status} ${await res.text()}`);
  await sleep(2000);
  const all = [];
  let ok = true;
  for (let i = 0; i < Number(runs); i++) {
    const p = await run('/usr/bin/python3', [`${here}relay_probe.py`, `${A.base}/whep/live/bench`, `${B.base}/whep/live/bench`, seconds], (Number(seconds) + 30) * 1000).done;
    let out;
    try { out = JSON.parse(p.out.trim().split('\n').pop()); } catch { out = { error: p.err.slice(-500) }; }
    console.log(`run ${i + 1}: ${JSON.stringify(out)}`);
    if (!out.matched) ok = false;
    else all.push(out);
  }
  const w = (k) => all.map(o => o[k]);
  if (all.length) console.log(`all runs: matched ${w('matched').reduce((a, b) => a + b, 0)} packets; p50 ${w('p50_ms').join('/')} ms, p99 ${w('p99_ms').join('/')} ms, max ${Math.max(...w('max_ms'))} ms`);
  const relay = (await B.json('/api/v1/relays')).relays[0];
  console.log(`relay: ${relay.state}, reconnects ${relay.reconnects}, packets lost ${relay.session?.packets_lost}`);
  status = ok ? 0 : 1;
} catch (e) {
  console.log(`FAIL - ${e.stack}`);
} finally {
  ff.kill('SIGTERM');
  rmSync(media, { force: true });
  const problems = await stopAll();
  if (problems.length) { console.log(`FAIL - ${problems.join('; ')}`); status = 1; }
}
process.exit(status);
