// Slow players never slow the others (see test_rtmp_slow.sh). Usage: node test_rtmp_slow.mjs
// BASE_URL UDP_PORT RTMP_PORT
import { reporter } from './lib/browser.mjs';
import { run } from './lib/proc.mjs';

const [base, , rtmpPort] = process.argv.slice(2);
const rtmp = `rtmp://127.0.0.1:${rtmpPort}`;
const r = reporter();
const sleep = (ms) => new Promise(res => setTimeout(res, ms));

const api = (path) => fetch(base + path).then(x => x.ok ? x.json() : null).catch(() => null);

const procs = [];
try {
  const pub = run('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-re',
    '-f', 'lavfi', '-i', 'testsrc2=size=640x360:rate=25', '-c:v', 'libx264', '-preset', 'ultrafast',
    '-tune', 'zerolatency', '-bf', '0', '-g', '25', '-b:v', '2M', '-pix_fmt', 'yuv420p',
    '-t', '60', '-f', 'flv', `${rtmp}/live/slow`], 90000);
  procs.push(pub.proc);
  let st = null;
  for (let i = 0; i < 50 && !(st?.flv?.tags_in > 25); i++) { await sleep(200); st = await api('/api/v1/streams/live/slow'); }
  r.check('ffmpeg publishes live/slow', st?.source === 'rtmp', JSON.stringify(st));

  // A fast RTMP player decoding 14 s, and two players that stop reading after 1 s.
  const fast = run('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-i', `${rtmp}/live/slow`, '-t', '14',
    '-f', 'framecrc', '-'], 40000);
  const slowRtmp = run('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-i', `${rtmp}/live/slow`, '-f', 'null', '-'], 60000);
  const slowFlv = run('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-i', `${base}/live/slow.flv`, '-f', 'null', '-'], 60000);
  procs.push(fast.proc, slowRtmp.proc, slowFlv.proc);
  await sleep(1500);
  slowRtmp.proc.kill('SIGSTOP');
  slowFlv.proc.kill('SIGSTOP');
  const players = (await api('/api/v1/sessions'))?.sessions?.filter(s => s.stream === 'slow' && s.role === 'player') || [];
  r.check('two RTMP players are on live/slow', players.length === 2, JSON.stringify(players));
  const subsBefore = (await api('/api/v1/streams/live/slow'))?.flv?.subscribers;
  r.check('three frame subscribers (2 RTMP + 1 HTTP-FLV)', subsBefore === 3, `subscribers ${subsBefore}`);

  // Within 12 s the stopped players overflow and are disconnected; the fast one keeps going.
  let overflowed = false, left = null;
  const t0 = Date.now();
  while (Date.now() - t0 < 12000) {
    await sleep(250);
    const ps = (await api('/api/v1/sessions'))?.sessions?.filter(s => s.stream === 'slow' && s.role === 'player') || [];
    if (ps.some(s => s.overflows > 0)) overflowed = true;
    const subs = (await api('/api/v1/streams/live/slow'))?.flv?.subscribers;
    if (ps.length === 1 && subs === 1) { left = Date.now() - t0; break; }
  }
  r.check('a stopped player overflows its queue (seen in the sessions API)', overflowed);
  r.check(`both stopped players are disconnected (after ${left} ms)`, left !== null);
  const f = await fast.done;
  const frames = (f.out.match(/^0,/gm) || []).length;
  r.check(`the fast player decoded every frame meanwhile (${frames} in 14 s)`, f.code === 0 && frames >= 14 * 25 * 0.9, f.err.slice(0, 300));
} catch (e) {
  r.check('test ran to the end', false, e.stack);
} finally {
  for (const p of procs) { try { p.kill('SIGCONT'); p.kill('SIGKILL'); } catch { /* gone */ } }
}
process.exit(r.done());
