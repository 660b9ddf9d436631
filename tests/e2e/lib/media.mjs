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

// The picture a <video> (CSS selector `selector`) shows now: size, mean brightness, spread of
// brightness, and the mean red, green and blue of `box` ({x, y, w, h} in video pixels; default
// the whole frame).
export async function videoPixels(page, selector = '#video', box = null) {
  return page.evaluate(({ selector, box }) => {
    const v = document.querySelector(selector);
    const w = v?.videoWidth || 0, h = v?.videoHeight || 0;
    if (!w || !h) return { width: w, height: h, mean: 0, spread: 0, rgb: [0, 0, 0] };
    const c = document.createElement('canvas');
    c.width = w; c.height = h;
    const g = c.getContext('2d', { willReadFrequently: true });
    g.drawImage(v, 0, 0);
    const b = box || { x: 0, y: 0, w, h };
    const d = g.getImageData(b.x, b.y, b.w, b.h).data;
    let min = 255, max = 0, sum = 0, n = 0;
    const rgb = [0, 0, 0];
    for (let i = 0; i < d.length; i += 4 * 7) {
      const y = (d[i] + d[i + 1] + d[i + 2]) / 3;
      min = Math.min(min, y); max = Math.max(max, y); sum += y; n++;
      for (let k = 0; k < 3; k++) rgb[k] += d[i + k];
    }
    return { width: w, height: h, mean: Math.round(sum / n), spread: Math.round(max - min), rgb: rgb.map(x => Math.round(x / n)) };
  }, { selector, box });
}

// Audio a peer connection received over durationMs: samples, energy (totalAudioEnergy) and the
// largest audioLevel seen (sampled every 100 ms). `pcOf` is the expression of the page that
// gives the RTCPeerConnection (default the play page's window.estuarySession.pc).
export async function observeAudio(page, durationMs = 2000, pcOf = 'window.estuarySession?.pc') {
  return page.evaluate(async ({ durationMs, pcOf }) => {
    const pc = () => (0, eval)(pcOf);
    const read = async () => {
      const r = { samples: 0, energy: 0, level: 0 };
      const p = pc();
      if (p) (await p.getStats()).forEach(s => {
        if (s.type === 'inbound-rtp' && s.kind === 'audio') { r.samples = s.totalSamplesReceived || 0; r.energy = s.totalAudioEnergy || 0; r.level = s.audioLevel || 0; }
      });
      return r;
    };
    const a = await read();
    let level = 0;
    for (let t = 0; t < durationMs; t += 100) {
      await new Promise(res => setTimeout(res, 100));
      level = Math.max(level, (await read()).level);
    }
    const b = await read();
    return { audioSamples: b.samples - a.samples, audioEnergy: b.energy - a.energy, maxLevel: level };
  }, { durationMs, pcOf });
}

// Video frames a peer connection decoded over durationMs (inbound-rtp framesDecoded: counted
// whether or not the page is in front), with the last frame size. `pcOf` as for observeAudio.
export async function decodedFrames(page, durationMs = 2000, pcOf = 'window.estuarySession?.pc') {
  return page.evaluate(async ({ durationMs, pcOf }) => {
    const read = async () => {
      const r = { frames: 0, width: 0, height: 0 };
      const p = (0, eval)(pcOf);
      if (p) (await p.getStats()).forEach(s => {
        if (s.type === 'inbound-rtp' && s.kind === 'video') { r.frames = s.framesDecoded || 0; r.width = s.frameWidth || 0; r.height = s.frameHeight || 0; }
      });
      return r;
    };
    const a = await read();
    await new Promise(res => setTimeout(res, durationMs));
    const b = await read();
    return { frames: b.frames - a.frames, width: b.width, height: b.height };
  }, { durationMs, pcOf });
}
