// In-page probes for decoded media, run with page.evaluate in a play page (web/play.html).
// They look at what the browser decoded: frames presented by the <video> element, the pixels of
// those frames, and the audio samples and energy WebRTC's receiver reports.

// Starts WHEP play and resolves with the time from just before the POST to the first decoded
// frame (ms), or rejects after timeoutMs.
export async function playAndTimeFirstFrame(page, timeoutMs = 10000) {
  return page.evaluate(async (timeoutMs) => {
    const v = document.getElementById('video');
    const t0 = performance.now();
    await window.estuaryPlay();
    return await new Promise((resolve, reject) => {
      const to = setTimeout(() => reject(new Error(`no decoded frame within ${timeoutMs} ms`)), timeoutMs);
      const onFrame = () => {
        if (v.videoWidth > 0) { clearTimeout(to); resolve(performance.now() - t0); }
        else v.requestVideoFrameCallback(onFrame);
      };
      v.requestVideoFrameCallback(onFrame);
    });
  }, timeoutMs);
}

// Watches the playing <video> for durationMs: frames presented, size, whether the picture has
// detail (pixel spread) and changes between two samples, and the audio receiver's counters.
export async function observeMedia(page, durationMs = 2500) {
  return page.evaluate(async (durationMs) => {
    const v = document.getElementById('video');
    let frames = 0;
    const count = () => { frames++; v.requestVideoFrameCallback(count); };
    v.requestVideoFrameCallback(count);
    const canvas = document.createElement('canvas');
    const grab = () => {
      canvas.width = v.videoWidth; canvas.height = v.videoHeight;
      const g = canvas.getContext('2d', { willReadFrequently: true });
      g.drawImage(v, 0, 0);
      return g.getImageData(0, 0, canvas.width, canvas.height).data;
    };
    const spread = (d) => {
      let min = 255, max = 0;
      for (let i = 0; i < d.length; i += 4 * 97) { const y = (d[i] + d[i + 1] + d[i + 2]) / 3; min = Math.min(min, y); max = Math.max(max, y); }
      return max - min;
    };
    const a = grab();
    const audioBefore = await audioStats();
    await new Promise(r => setTimeout(r, durationMs));
    const b = grab();
    let changed = 0;
    for (let i = 0; i < Math.min(a.length, b.length); i += 4 * 31) if (Math.abs(a[i] - b[i]) > 16) changed++;
    const audioAfter = await audioStats();
    return {
      frames, fps: frames * 1000 / durationMs, width: v.videoWidth, height: v.videoHeight,
      spread: spread(b), changedSamples: changed,
      audioSamples: audioAfter.samples - audioBefore.samples,
      audioEnergy: audioAfter.energy - audioBefore.energy,
    };

    async function audioStats() {
      const pc = window.estuarySession?.pc;
      let samples = 0, energy = 0;
      if (pc) (await pc.getStats()).forEach(s => {
        if (s.type === 'inbound-rtp' && s.kind === 'audio') { samples = s.totalSamplesReceived || 0; energy = s.totalAudioEnergy || 0; }
      });
      return { samples, energy };
    }
  }, durationMs);
}
