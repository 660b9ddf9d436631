// Launches Debian's Firefox ESR through puppeteer-core over WebDriver BiDi, headless, with a fresh
// profile folder (removed on close) and the preferences every Estuary Firefox test uses: fake
// camera and microphone without a permission prompt, real (not mDNS) host ICE candidates,
// autoplay, H.264 through the platform decoder, full-size video from the start, and no
// background traffic. Firefox gathers no loopback ICE candidate (and none at all without a
// default route): the test's network namespace needs an interface with an address and a default
// route. Firefox's fake camera is one solid colour cycling through hues, with a thin timestamp
// bar along the top.
// Returns { browser, newPage(), close() }; pages have the puppeteer Page API (goto, evaluate,
// waitForFunction, bringToFront), which the helpers of media.mjs use.
import puppeteer from 'puppeteer-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const FIREFOX_PREFS = {
  // Media: fake devices, no prompt, host candidates as IP addresses, autoplay with sound.
  'media.navigator.streams.fake': true,
  'media.navigator.permission.disabled': true,
  'media.peerconnection.ice.obfuscate_host_addresses': false,
  'media.autoplay.default': 0,
  'media.autoplay.blocking_policy': 0,
  // A bandwidth estimate of at least 1 Mbit/s from the start: otherwise the encoder sends the
  // 640x480 fake camera at 320x240 for the first ~10 s (then 480x360) while the estimate grows.
  'media.peerconnection.video.min_bitrate_estimate': 1000000,
  // H.264 without the OpenH264 plugin (it cannot be downloaded offline): the platform's decoder
  // (system libavcodec), which Firefox offers only when its graphics blocklist says the WebRTC
  // H.264 "hardware" feature is allowed (1 = FEATURE_STATUS_OK; without it no H264 in the SDP).
  'media.webrtc.hw.h264.enabled': true,
  'gfx.blacklist.webrtc.hw.acceleration.h264': 1,
  // Quiet: no captive-portal, connectivity, telemetry, region, remote settings or add-on traffic.
  'network.captive-portal-service.enabled': false,
  'network.connectivity-service.enabled': false,
  'network.dns.disablePrefetch': true,
  'network.prefetch-next': false,
  'toolkit.telemetry.enabled': false,
  'toolkit.telemetry.unified': false,
  'toolkit.telemetry.server': '',
  'browser.region.update.enabled': false,
  'browser.region.network.url': '',
  'browser.discovery.enabled': false,
  'extensions.systemAddon.update.enabled': false,
  'extensions.blocklist.enabled': false,
  'app.normandy.enabled': false,
  'app.shield.optoutstudies.enabled': false,
};

export async function launchFirefox() {
  const profile = mkdtempSync(join(tmpdir(), 'estuary-firefox-'));
  let browser;
  try {
    browser = await puppeteer.launch({
      browser: 'firefox',
      protocol: 'webDriverBiDi',
      executablePath: process.env.FIREFOX || '/usr/bin/firefox-esr',
      headless: true,
      userDataDir: profile,
      extraPrefsFirefox: FIREFOX_PREFS,
      env: { ...process.env, MOZ_CRASHREPORTER_DISABLE: '1' },
      timeout: 60000,
      protocolTimeout: 60000,
    });
  } catch (e) {
    rmSync(profile, { recursive: true, force: true });
    throw e;
  }
  return {
    browser,
    newPage: () => browser.newPage(),
    async close() {
      let timer;
      const late = new Promise(res => { timer = setTimeout(res, 10000); });
      await Promise.race([browser.close().catch(() => {}), late]);
      clearTimeout(timer);
      browser.process()?.kill('SIGKILL'); // a no-op once it has exited
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
