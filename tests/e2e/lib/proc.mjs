// Child processes for the end-to-end tests: run a command with a deadline and collect its output.
import { spawn } from 'node:child_process';

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
