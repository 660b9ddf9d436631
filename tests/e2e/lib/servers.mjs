// Several Estuary processes for one test (relays, edges, a balancer), all inside the caller's
// network namespace: each on free ports of 127.0.0.1 (WebRTC UDP on 0.0.0.0 with loopback
// candidates), with its own folder and log. A server can be stopped and started again on the
// same ports (a remote that restarts). stopAll() sends SIGTERM to each, waits for it (10 s at
// most) and returns the problems: non-zero exits and sanitizer reports. ES_KEEP_LOGS=DIR keeps a
// copy of each server's log there (NAME.log).
import { spawn } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sleep } from './proc.mjs';

export function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.on('error', rej);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => res(port)); });
  });
}

const servers = [];

// start(bin, name, extraYaml): a server whose configuration ends with extraYaml (apps, relays).
export async function startServer(bin, name, extraYaml = '') {
  const work = mkdtempSync(join(tmpdir(), `estuary-${name}-`));
  const srv = {
    name, work, bin, extraYaml, log: join(work, 'estuary.log'), proc: null, exits: [],
    port: await freePort(), udp: await freePort(), tcp: await freePort(), rtmp: await freePort(),
  };
  srv.base = `http://127.0.0.1:${srv.port}`;
  srv.yaml = () => `log:
  level: ${process.env.ES_LOG_LEVEL || 'debug'}
http:
  listen: "127.0.0.1:${srv.port}"
webrtc:
  udp_listen: "0.0.0.0:${srv.udp}"
  tcp_listen: "0.0.0.0:${srv.tcp}"
  candidates: ["*"]
rtmp:
  listen: "127.0.0.1:${srv.rtmp}"
hls:
  directory: "${work}/hls"
  cleanup_ms: 0
${srv.extraYaml}
`;
  srv.start = async () => {
    writeFileSync(join(work, 'estuary.yaml'), srv.yaml());
    const { openSync } = await import('node:fs');
    const fd = openSync(srv.log, 'a');
    srv.proc = spawn(bin, ['-c', join(work, 'estuary.yaml')], { cwd: work, stdio: ['ignore', 'ignore', fd] });
    const p = srv.proc;
    srv.exited = new Promise(r => p.on('exit', (code, sig) => { srv.exits.push({ code, sig }); r(); }));
    for (let i = 0; i < 100; i++) {
      try { if ((await fetch(`${srv.base}/api/v1/version`)).ok) return srv; } catch { /* not yet */ }
      await sleep(100);
    }
    throw new Error(`${name} did not start: ${readFileSync(srv.log, 'utf8').slice(-2000)}`);
  };
  srv.stop = async () => {
    if (!srv.proc || srv.proc.exitCode !== null || srv.proc.signalCode) return;
    srv.proc.kill('SIGTERM');
    const t = setTimeout(() => { srv.exits.push({ code: 'timeout' }); srv.proc.kill('SIGKILL'); }, 10000);
    await srv.exited;
    clearTimeout(t);
  };
  // SIGHUP after replacing the configuration's tail.
  srv.reload = async (extra) => {
    srv.extraYaml = extra;
    writeFileSync(join(work, 'estuary.yaml'), srv.yaml());
    srv.proc.kill('SIGHUP');
    await sleep(300);
  };
  srv.api = async (path, init) => fetch(srv.base + path, init);
  srv.json = async (path, init) => (await fetch(srv.base + path, init)).json();
  srv.post = async (path, body) => fetch(srv.base + path, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
  srv.logText = () => { try { return readFileSync(srv.log, 'utf8'); } catch { return ''; } };
  servers.push(srv);
  await srv.start();
  return srv;
}

// Stops every server; returns a list of problems (empty when all exited 0 without a sanitizer
// report). keepLogs: print each log's last lines.
export async function stopAll({ printLogs = false } = {}) {
  const problems = [];
  for (const s of servers) {
    await s.stop();
    const text = s.logText();
    for (const e of s.exits)
      if (e.code !== 0 && !(e.expectedKill)) problems.push(`${s.name} exited ${e.code ?? e.sig}`);
    if (/Sanitizer|runtime error/.test(text)) {
      problems.push(`${s.name}: sanitizer report`);
      const i = text.search(/Sanitizer|runtime error/);
      console.log(text.slice(Math.max(0, i - 200), i + 4000));
    }
    if (printLogs || problems.length) {
      console.log(`# ${s.name} log (last 40 lines):`);
      console.log(text.split('\n').filter(l => !/ DEBUG http: /.test(l)).slice(-40).join('\n'));
    }
    if (process.env.ES_KEEP_LOGS) copyFileSync(s.log, join(process.env.ES_KEEP_LOGS, `${s.name}.log`));
    rmSync(s.work, { recursive: true, force: true });
  }
  return problems;
}
