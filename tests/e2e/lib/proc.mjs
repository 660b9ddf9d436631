// Child processes for the end-to-end tests: run a command with a deadline and collect its output.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';

// Runs `cmd args`, killed after timeoutMs (SIGCONT first, so a process a test stopped with
// SIGSTOP dies too); `done` resolves with { code, sig, out, err }.
export function run(cmd, args, timeoutMs) {
  const p = spawn(cmd, args);
  let out = '', err = '';
  p.stdout.on('data', d => { out += d; });
  p.stderr.on('data', d => { err += d; });
  const timer = setTimeout(() => { p.kill('SIGCONT'); p.kill('SIGKILL'); }, timeoutMs);
  const done = new Promise(res => p.on('close', (code, sig) => { clearTimeout(timer); res({ code, sig, out, err }); }));
  return { proc: p, done };
}

// Decodes `seconds` of `url` with ffmpeg into 160x90 grey frames and 8 kHz mono samples (files
// PREFIX.gray and PREFIX.s16), and measures them: frame count, detail and motion of the picture, RMS level and pitch of the tone.
export async function decodeMedia(url, seconds, prefix) {
  const v = `${prefix}.gray`, a = `${prefix}.s16`;
  const res = await run('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-rw_timeout', '10000000',
    '-i', url,
    '-map', '0:v:0', '-t', String(seconds), '-vf', 'scale=160:90', '-pix_fmt', 'gray', '-f', 'rawvideo', '-y', v,
    '-map', '0:a:0', '-t', String(seconds), '-ac', '1', '-ar', '8000', '-f', 's16le', '-y', a],
  (seconds + 20) * 1000).done;
  const m = { code: res.code, err: res.err.trim().slice(0, 300), frames: 0, spread: 0, motion: 0, samples: 0, rms: 0, hz: 0 };
  if (existsSync(v)) {
    const d = readFileSync(v), fs = 160 * 90;
    m.frames = Math.floor(d.length / fs);
    if (m.frames > 10) {
      const f0 = d.subarray(0, fs), f1 = d.subarray(10 * fs, 11 * fs);
      let min = 255, max = 0, diff = 0;
      for (let i = 0; i < fs; i++) { min = Math.min(min, f0[i]); max = Math.max(max, f0[i]); diff += Math.abs(f0[i] - f1[i]); }
      m.spread = max - min; m.motion = diff / fs;
    }
  }
  if (existsSync(a)) {
    const d = readFileSync(a);
    const n = Math.floor(d.length / 2);
    m.samples = n;
    let sum = 0, zc = 0, prev = 0;
    const skip = Math.min(n, 800); // the first 100 ms may hold the decoder's priming
    for (let i = skip; i < n; i++) {
      const s = d.readInt16LE(i * 2);
      sum += s * s;
      if ((s >= 0) !== (prev >= 0)) zc++;
      prev = s;
    }
    if (n > skip) { m.rms = Math.sqrt(sum / (n - skip)); m.hz = zc / 2 / ((n - skip) / 8000); }
  }
  return m;
}

export const sleep = (ms) => new Promise(res => setTimeout(res, ms));

// Polls fn() every 100 ms until it returns something truthy (returned) or timeoutMs passes
// (throws "timed out waiting for <what>"); a rejection counts as "not yet".
export async function waitFor(what, fn, timeoutMs = 10000) {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    const v = await fn().catch(() => null);
    if (v) return v;
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}`);
}
