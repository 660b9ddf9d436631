// WHIP publish and WHEP play between Chromium pages through Estuary, asserting on decoded media:
// for H.264 and for VP8, one page publishes its fake camera and microphone, two pages play;
// frames are decoded at the publisher's size and move, audio samples with energy arrive; the
// time from the WHEP POST to the first decoded frame is printed; random datagrams sprayed at
// the UDP port do not disturb a live stream; DELETE ends sessions and the API stops listing them.
// Usage: node test_webrtc_browser.mjs BASE_URL UDP_PORT
import { launchBrowser, reporter } from './lib/browser.mjs';
import { playAndTimeFirstFrame, observeMedia } from './lib/media.mjs';
import { waitFor, sleep } from './lib/proc.mjs';
import { spawn } from 'node:child_process';

const [base, udpPort] = process.argv.slice(2);
const r = reporter();
const api = async (path, init) => fetch(base + path, init);
const sessions = async () => (await (await api('/api/v1/sessions')).json()).sessions;

const browser = await launchBrowser();
const firstFrameMs = [];
try {
  for (const codec of ['H264', 'VP8']) {
    const stream = `cam-${codec.toLowerCase()}`;
    const pub = await browser.context.newPage();
    pub.on('console', m => { if (m.type() === 'error') console.log(`  publisher console: ${m.text()}`); });
    await pub.goto(`${base}/publish.html?app=live&stream=${stream}&codec=${codec}`);
    await pub.waitForFunction(() => typeof window.estuaryPublish === 'function');
    const pubResource = await pub.evaluate(() => window.estuaryPublish());
    r.check(`${codec}: WHIP answered with a session resource`, /\/whip\/live\/[^/]+\/[0-9a-f]{16}-[0-9a-f]{32}$/.test(pubResource), pubResource);
    const info = await waitFor('the publisher\'s media', async () => {
      const s = await (await api(`/api/v1/streams/live/${stream}`)).json();
      return s.packets_in > 50 && s.tracks?.length === 2 ? s : null;
    });
    const vtrack = info.tracks.find(t => t.kind === 'video');
    r.check(`${codec}: the stream reports ${codec} video and Opus audio`, vtrack?.codec === codec && info.tracks.some(t => t.codec === 'opus'), JSON.stringify(info.tracks));
    const size = await pub.evaluate(() => window.estuarySession.pc.getSenders().find(s => s.track?.kind === 'video').track.getSettings());

    const players = [];
    for (let i = 0; i < 2; i++) {
      const page = await browser.context.newPage();
      await page.goto(`${base}/play.html?app=live&stream=${stream}`);
      await page.waitForFunction(() => typeof window.estuaryPlay === 'function');
      let ms = -1;
      try { ms = await playAndTimeFirstFrame(page); } catch (e) { r.check(`${codec}: player ${i + 1} decodes a frame`, false, e.message); }
      if (ms >= 0) {
        firstFrameMs.push(ms);
        console.log(`# ${codec} player ${i + 1}: WHEP POST to first decoded frame ${ms.toFixed(0)} ms`);
      }
      players.push(page);
    }
    for (const [i, page] of players.entries()) {
      await page.bringToFront(); // background tabs render at a throttled rate
      const m = await observeMedia(page);
      r.check(`${codec}: player ${i + 1} decodes frames (${m.frames} in 2.5 s)`, m.frames >= 15, JSON.stringify(m));
      r.check(`${codec}: player ${i + 1} frame size ${m.width}x${m.height} matches the camera ${size.width}x${size.height}`, m.width === size.width && m.height === size.height);
      r.check(`${codec}: player ${i + 1} picture has detail and moves`, m.spread > 40 && m.changedSamples > 0, JSON.stringify(m));
      r.check(`${codec}: player ${i + 1} receives audio samples with energy`, m.audioSamples > 48000 && m.audioEnergy > 0, JSON.stringify(m));
    }

    // transport-cc: the server sends the publisher feedback (its API counts the packets), and
    // Chrome's bandwidth estimate, which without transport-cc never passes 0.6 Mbit/s here, grows
    // on it. Read for up to 10 s, before the datagram spray below (the spray overflows the
    // server's socket buffer under ASan and Chrome's loss-based controller backs off). How far
    // the estimate grows depends on what the encoder sends: GoogCC keeps it near twice the
    // acknowledged rate when the encoder is application-limited (OpenH264 at about 0.45 Mbit/s
    // here, and VP8 too on a loaded CI machine: 0.49 Mbit/s in, 1.13 Mbit/s estimated).
    const estimate = () => pub.evaluate(async () => {
      let best = 0;
      (await window.estuarySession.pc.getStats()).forEach(s => {
        if (s.type === 'candidate-pair' && s.nominated && s.availableOutgoingBitrate) best = Math.max(best, s.availableOutgoingBitrate);
      });
      return best;
    });
    const feedback = async () => ((await sessions()).find(s => s.stream === stream && s.role === 'publisher') || {}).twcc_feedback || 0;
    const feedback0 = await feedback();
    let bwe = await estimate();
    for (let i = 0; i < 20 && (i < 2 || bwe <= 1.5e6); i++) { await sleep(500); bwe = Math.max(bwe, await estimate()); }
    const feedback1 = await feedback();
    const rate = (await (await api(`/api/v1/streams/live/${stream}`)).json()).bitrate_in_bps;
    console.log(`# ${codec}: publisher's bandwidth estimate ${(bwe / 1e6).toFixed(2)} Mbit/s, stream in ${(rate / 1e6).toFixed(2)} Mbit/s, ${feedback1 - feedback0} transport-cc feedback packets sent meanwhile`);
    r.check(`${codec}: the server sends the publisher transport-cc feedback (${feedback1 - feedback0} packets while reading the estimate)`, feedback1 - feedback0 >= 5, `${feedback0} -> ${feedback1}`);
    // Asserted on the VP8 publisher only: with OpenH264 the estimate stays at 0.7-0.9 Mbit/s in
    // about a third of the runs, too close to the 0.6 Mbit/s reached without feedback.
    if (codec === 'VP8')
      r.check(`${codec}: transport-cc feedback lets the publisher's estimate grow past 1 Mbit/s`, bwe > 1.0e6, `${bwe} bit/s`);

    if (codec === 'H264') {
      // Spray: random datagrams of every first-byte class at the media port during the stream.
      const spray = spawn('python3', ['-c', `
import os, random, socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
end = time.time() + 2.0
n = 0
while time.time() < end and n < 40000:
    first = random.choice([0, 1, 3, 20, 22, 63, 128, 144, 191, 200, 255])
    s.sendto(bytes([first]) + os.urandom(random.randint(0, 1400)), ("127.0.0.1", ${Number(udpPort)}))
    n += 1
print(n)
`]);
      let sent = '';
      spray.stdout.on('data', d => { sent += d; });
      const sprayDone = new Promise(res => spray.on('close', res));
      await players[0].bringToFront();
      const during = await observeMedia(players[0], 2500);
      await sprayDone;
      r.check(`${codec}: ${sent.trim()} random datagrams sprayed at the UDP port do not disturb playback`, during.frames >= 15 && during.changedSamples > 0, JSON.stringify(during));
    }

    if (codec === 'VP8') {
      // The publisher leaves and comes back: connected players keep playing.
      await pub.evaluate(() => window.estuaryStop());
      const waiting = await (await api(`/api/v1/streams/live/${stream}`)).json();
      r.check(`${codec}: players keep the stream while its publisher is away`, waiting.publishing === false && waiting.players === 2, JSON.stringify(waiting));
      await sleep(1000);
      await pub.evaluate(() => window.estuaryPublish());
      await players[0].bringToFront();
      const after = await observeMedia(players[0], 3000);
      r.check(`${codec}: after the publisher reconnects, player 1 decodes frames again without a new WHEP (${after.frames} in 3 s)`, after.frames >= 15 && after.changedSamples > 0, JSON.stringify(after));
    }

    // DELETE the players and the publisher; the API stops listing them.
    const before = await sessions();
    r.check(`${codec}: the API lists the publisher and both players`, before.filter(s => s.stream === stream).length === 3, JSON.stringify(before));
    const playerIds = [];
    for (const page of players) {
      const res = await page.evaluate(() => window.estuarySession.resource);
      playerIds.push(res.split('/').pop().split('-')[0]); // <id>-<secret>
      await page.evaluate(() => window.estuaryStop());
      await page.close();
    }
    const afterPlayers = await sessions();
    r.check(`${codec}: DELETE removes both players at once`, !afterPlayers.some(s => playerIds.includes(s.id)), JSON.stringify(afterPlayers));
    await pub.evaluate(() => window.estuaryStop());
    await pub.close();
    // The stream goes once its HLS has ended (hls.cleanup_ms is 0 in the tests: at the next
    // 100 ms maintenance).
    let gone = await api(`/api/v1/streams/live/${stream}`);
    for (let i = 0; i < 20 && gone.status !== 404; i++) { await sleep(100); gone = await api(`/api/v1/streams/live/${stream}`); }
    r.check(`${codec}: after the publisher's DELETE the stream is gone (404)`, gone.status === 404);
    r.check(`${codec}: no sessions left`, (await sessions()).length === 0);
  }
} catch (e) {
  r.check('browser scenario ran to the end', false, e.stack);
} finally {
  await browser.close();
}
if (firstFrameMs.length) {
  const worst = Math.max(...firstFrameMs);
  console.log(`# WHEP POST to first decoded frame: ${firstFrameMs.map(x => x.toFixed(0)).join(', ')} ms (worst ${worst.toFixed(0)} ms; target < 500 ms on loopback)`);
  r.check('first decoded frame within 500 ms of the WHEP POST (loopback)', worst < 500, `${worst.toFixed(0)} ms`);
}
process.exit(r.done());
