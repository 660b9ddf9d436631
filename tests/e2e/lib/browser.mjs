// Launches Debian's Chromium through playwright-core with the flags every Estuary browser test
// uses (no sandbox as root, no GPU, no QUIC, no background traffic, fake camera and microphone,
// loopback ICE candidates allowed, autoplay) and a fresh profile folder, removed on close.
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
  '--allow-loopback-in-peer-connection', '--autoplay-policy=no-user-gesture-required',
];

export async function launchBrowser() {
  const profile = mkdtempSync(join(tmpdir(), 'estuary-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: CHROMIUM_ARGS,
    timeout: 30000,
  });
  return {
    context,
    profile, // the --user-data-dir: `pgrep -f PROFILE` finds this browser's processes
    async close() {
      await context.close().catch(() => {});
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

// Minimal TAP-like reporting that ends with the "N passed, N failed" line.
export function reporter() {
  let passed = 0, failed = 0;
  return {
    check(name, ok, detail = '') {
      if (ok) { passed++; console.log(`ok - ${name}`); }
      else { failed++; console.log(`FAIL - ${name}${detail ? ': ' + detail : ''}`); }
    },
    done() {
      console.log(`${passed} passed, ${failed} failed`);
      return failed === 0 ? 0 : 1;
    },
  };
}
