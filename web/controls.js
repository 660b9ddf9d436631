// The mute, video-mute and screen buttons (ids mute, mutevideo, screen) of the call and room
// pages, bound to the Publisher that publisher() returns at the click.
export function wireControls(publisher) {
  const $ = (id) => document.getElementById(id);
  $('mute').onclick = () => {
    const p = publisher();
    if (p.muted) p.unmute(); else p.mute();
    $('mute').textContent = p.muted ? 'Unmute audio' : 'Mute audio';
  };
  $('mutevideo').onclick = () => {
    const p = publisher();
    if (p.videoMuted) p.unmuteVideo(); else p.muteVideo();
    $('mutevideo').textContent = p.videoMuted ? 'Unmute video' : 'Mute video';
  };
  $('screen').onclick = async () => {
    $('screen').textContent = await publisher().shareScreen().catch(() => false) ? 'Back to the camera' : 'Share screen';
  };
}
