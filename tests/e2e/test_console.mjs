// The operator console (web/console.html) in Chromium, asserting on what the page renders,
// against a server whose admin API needs a token (CONSOLE_TOKEN, its api.token), opened from
// the front page's link:
//   - without the token the page says the sessions need it (401); with a wrong one, that the
//     server refused it (403); with the right one, typed into the password field or given as
//     ?token= (then taken out of the address bar), it lists the sessions;
//   - an FFmpeg RTMP publisher's stream: its name, H264 and AAC, an ingest bitrate above
//     100 kbit/s and within a factor of 2 of the API's own figure, 0 players, then 1 and 2 as
//     two WHEP players in Chromium connect; charts with more points as the seconds pass;
//   - the sessions table: the publisher and the players with protocol, role and the remote
//     address the API gives, and a bitrate for the players; an FFmpeg RTMP player too;
//   - Kick on a WHEP player's row: the API lists it no more, shows it ended ("kicked"), its
//     peer connection in the page ends, and the stream counts one player less; Kick on the
//     RTMP player's row: FFmpeg's connection ends;
//   - a stream and a session named with HTML (fed to the page through request interception,
//     since the server refuses such names, which is checked first) render as text;
//   - while the API does not answer, the page says so and polls less often (1 s up to 5 s).
// Every wait is bounded. Usage: node test_console.mjs BASE_URL UDP_PORT RTMP_PORT
import { launchBrowser, reporter } from './lib/browser.mjs';
import { ffmpegPublish, request } from './lib/clients.mjs';
import { run, sleep, waitFor } from './lib/proc.mjs';

const [base, , rtmpPort] = process.argv.slice(2);
const TOKEN = process.env.CONSOLE_TOKEN;
if (!TOKEN) { console.log('FAIL - CONSOLE_TOKEN (the server\'s api.token) is not set: run test_console.sh'); process.exit(1); }
const r = reporter();
const note = (m) => console.log(`# ${m}`);
const admin = { Authorization: `Bearer ${TOKEN}` };
const STREAM = 'cam';
const NAME = `live/${STREAM}`;
const rtmpUrl = `rtmp://127.0.0.1:${rtmpPort}/live/${STREAM}`;

const apiSessions = async () => (await request(`${base}/api/v1/sessions`, { headers: admin })).json?.sessions || [];
const apiStream = async () => (await request(`${base}/api/v1/streams/live/${STREAM}`)).json;

// The rendered row of a stream or a session: { field: { text, value } } plus the row's data
// attributes and its charts, or null when the table has no such row. Rows are matched in the
// page by their attribute's value, not through a selector built from it.
async function streamRow(page, name) {
  return page.evaluate((name) => {
    const tr = [...document.querySelectorAll('#streams tbody tr[data-stream]')].find(x => x.dataset.stream === name);
    if (!tr) return null;
    const row = { attrs: { ...tr.dataset }, charts: {} };
    for (const td of tr.querySelectorAll('td[data-field]')) row[td.dataset.field] = { text: td.textContent, value: td.dataset.value ?? '' };
    for (const svg of tr.querySelectorAll('svg[data-chart]')) {
      const pts = (svg.querySelector('polyline')?.getAttribute('points') || '').trim();
      row.charts[svg.dataset.chart] = { points: Number(svg.dataset.points), drawn: pts ? pts.split(/\s+/).length : 0, max: Number(svg.dataset.max) };
    }
    return row;
  }, name);
}
async function sessionRow(page, id) {
  return page.evaluate((id) => {
    const tr = [...document.querySelectorAll('#sessions tbody tr[data-session]')].find(x => x.dataset.session === id);
    if (!tr) return null;
    const row = { attrs: { ...tr.dataset }, kick: !!tr.querySelector('button[data-action=kick]') };
    for (const td of tr.querySelectorAll('td[data-field]')) row[td.dataset.field] = { text: td.textContent, value: td.dataset.value ?? '' };
    return row;
  }, id);
}
const sessionIds = (page) => page.$$eval('#sessions tbody tr[data-session]', trs => trs.map(tr => tr.dataset.session));
const authOf = (page) => page.evaluate(() => ({ status: document.getElementById('auth').dataset.status,
  hidden: document.getElementById('auth').hidden, text: document.getElementById('auth').textContent }));
// Calls fn() every 200 ms until pred(its value) (returns it) or ms pass (returns the last value).
async function until(fn, pred, ms = 8000) {
  const end = Date.now() + ms;
  let v = null;
  do {
    v = await fn().catch(() => null);
    if (pred(v)) return v;
    await sleep(200);
  } while (Date.now() < end);
  return v;
}
const rowPlayers = async (page) => Number((await streamRow(page, NAME))?.players?.value ?? -1);

// A WHEP player in a Chromium page of the server's origin, without the SDK (whose players
// reconnect): a receive-only peer connection whose states the page records. Returns the
// session id from the Location.
async function whepPlayer(context) {
  const page = await context.newPage();
  await page.goto(`${base}/style.css`);
  const res = await page.evaluate(async (path) => {
    const pc = new RTCPeerConnection({ iceServers: [], bundlePolicy: 'max-bundle' });
    window.pc = pc;
    window.states = [];
    pc.addTransceiver('audio', { direction: 'recvonly' });
    pc.addTransceiver('video', { direction: 'recvonly' });
    pc.addEventListener('connectionstatechange', () => window.states.push(pc.connectionState));
    await pc.setLocalDescription(await pc.createOffer());
    const res = await fetch(path, { method: 'POST', headers: { 'Content-Type': 'application/sdp' }, body: pc.localDescription.sdp });
    const text = await res.text();
    if (res.status !== 201) return { status: res.status, error: text };
    await pc.setRemoteDescription({ type: 'answer', sdp: text });
    const dtls = pc.getReceivers()[0].transport;
    dtls?.addEventListener('statechange', () => window.states.push(`dtls ${dtls.state}`));
    return { status: res.status, location: res.headers.get('Location') };
  }, `/whep/live/${STREAM}`);
  const id = (res.location || '').split('/').pop().split('-')[0];
  const frames = async () => page.evaluate(async () => {
    let n = 0;
    (await window.pc.getStats()).forEach(s => { if (s.type === 'inbound-rtp' && s.kind === 'video') n = s.framesDecoded || 0; });
    return n;
  });
  const decoded = res.status === 201 ? await until(frames, n => n > 5, 10000) : 0;
  return { page, id, res, decoded, frames };
}

const chromium = await launchBrowser();
const publisher = ffmpegPublish(rtmpUrl, 150, { size: '320x180', rate: 15 });
let rtmpPlayer = null;
try {
  // 0. The server refuses a stream named with HTML, so the page cannot get one from it (the
  //    rendering of such a name is checked in 6 with the API's answer replaced).
  const html = await request(`${base}/whip/live/${encodeURIComponent('<img src=x onerror=alert(1)>')}`,
    { method: 'POST', headers: { 'Content-Type': 'application/sdp' }, body: 'v=0\r\n' });
  r.check('the server refuses a stream name with HTML in it (400)', html.status === 400, `${html.status} ${html.text}`);

  const live = await waitFor('the RTMP publisher\'s stream', async () => {
    const s = await apiStream();
    return s?.publishing && s.flv?.bitrate_bps > 0 && s.flv.audio_codec ? s : null;
  }, 20000).catch(e => { r.check('the FFmpeg RTMP publisher\'s stream is published', false, e.message); return null; });
  if (!live) throw new Error('no stream to look at');
  note(`the API: ${NAME} from ${live.source}, ${live.flv.video_codec}/${live.flv.audio_codec}, ingest ${live.flv.bitrate_bps} bit/s`);

  // 1. Without a token, then a wrong one, then the right one in the password field.
  const page = await chromium.context.newPage();
  page.on('pageerror', e => r.check('the console throws no error', false, e.message));
  await page.goto(`${base}/`);
  await page.click('a[href="console.html"]', { timeout: 5000 }).catch(() => {});
  r.check('the front page links the console', page.url() === `${base}/console.html`, page.url());
  if (page.url() !== `${base}/console.html`) await page.goto(`${base}/console.html`);
  const noToken = await until(() => authOf(page), a => a?.status === '401');
  r.check('without a token the page says the sessions need the admin token (401)',
    noToken?.status === '401' && !noToken.hidden && /token/i.test(noToken.text) && /api\.token/.test(noToken.text), JSON.stringify(noToken));
  const emptyRows = await page.$$eval('#sessions tbody tr', trs => trs.map(tr => tr.textContent));
  r.check('without a token the sessions table lists none and says why', emptyRows.length === 1 && /token/i.test(emptyRows[0]), JSON.stringify(emptyRows));
  const publicRow = await until(() => streamRow(page, NAME), x => !!x);
  r.check('without a token the public streams are listed', publicRow?.name?.text === NAME, JSON.stringify(publicRow?.name));

  await page.fill('#token', 'not-the-token');
  await page.click('#use-token');
  const wrong = await until(() => authOf(page), a => a?.status === '403');
  r.check('with a wrong token the page says the server refused it (403)',
    wrong?.status === '403' && !wrong.hidden && /refused/.test(wrong.text) && /wrong admin token/.test(wrong.text), JSON.stringify(wrong));

  await page.fill('#token', TOKEN);
  await page.click('#use-token');
  const pubId = await waitFor('the RTMP publisher\'s session', async () => (await apiSessions()).find(s => s.role === 'publisher' && s.stream === STREAM)?.id, 5000).catch(() => '');
  const right = await until(async () => ({ auth: await authOf(page), ids: await sessionIds(page) }), x => x?.auth.hidden && x.ids.includes(pubId));
  r.check('with the token typed in the sessions are listed and the message is gone', right?.auth.hidden && right.ids.includes(pubId), JSON.stringify(right));
  const stored = await page.evaluate(() => sessionStorage.getItem('estuary.console.token'));
  r.check('the token is kept in the tab\'s sessionStorage', stored === TOKEN);

  // 2. The stream's row: name, codecs, ingest bitrate, players.
  // FFmpeg's rate climbs over its first seconds (the API measures over the last ones).
  const row = await until(() => streamRow(page, NAME), x => Number(x?.bitrate?.value) > 100e3, 10000);
  const apiNow = await apiStream();
  const shownBps = Number(row?.bitrate?.value), apiBps = apiNow?.flv?.bitrate_bps;
  note(`the page: ${JSON.stringify({ codecs: row?.codecs?.text, bitrate: row?.bitrate?.text, players: row?.players?.text, bridge: row?.bridge?.text, size: row?.size?.text })}`);
  r.check('the stream row shows the stream\'s name', row?.name?.text === NAME && row.attrs.stream === NAME, JSON.stringify(row?.name));
  r.check('the stream row shows the codecs the publisher sends (H264, AAC)', /H264/.test(row?.codecs?.text) && /AAC/.test(row?.codecs?.text), row?.codecs?.text);
  r.check(`the ingest bitrate shown (${shownBps} bit/s) is over 100 kbit/s and within 2x of the API's (${apiBps})`,
    shownBps > 100e3 && shownBps < 5e6 && shownBps > apiBps / 2 && shownBps < apiBps * 2, row?.bitrate?.text);
  r.check('the ingest bitrate is shown in kbit/s', /^\d+ kbit\/s$/.test(row?.bitrate?.text || ''), row?.bitrate?.text);
  r.check('the stream row shows 0 players before any WebRTC player', row?.players?.value === '0', JSON.stringify(row?.players));

  const pubApi = (await apiSessions()).find(s => s.id === pubId);
  const pubRow = await until(() => sessionRow(page, pubId), x => Number(x?.bitrate?.value) > 0); // two polls make a bitrate
  r.check('the publisher\'s row: protocol rtmp, role publisher, its remote address, state',
    pubRow?.protocol?.value === 'rtmp' && pubRow.role.text === 'publisher' && pubRow.remote.text === pubApi?.remote &&
    /^127\.0\.0\.1:\d+$/.test(pubRow.remote.text) && pubRow.state.text === 'publishing' && pubRow.stream.text === NAME,
    JSON.stringify({ pubRow, api: pubApi?.remote }));
  r.check('the publisher\'s row: a bitrate, no loss or RTT over RTMP (–), a duration, a kick button',
    Number(pubRow?.bitrate?.value) > 100e3 && pubRow.loss.text === '–' && pubRow.rtt.text === '–' &&
    /^\d+:\d\d$/.test(pubRow.duration.text) && pubRow.kick, JSON.stringify(pubRow));

  // 3. Two WHEP players: 1, then 2 players.
  const p1 = await whepPlayer(chromium.context);
  r.check('WHEP player 1 plays the stream', p1.res.status === 201 && p1.decoded > 5, JSON.stringify({ res: p1.res, decoded: p1.decoded }));
  const one = await until(() => rowPlayers(page), n => n === 1);
  r.check('the stream row shows 1 player', one === 1, `${one}`);
  const p2 = await whepPlayer(chromium.context);
  r.check('WHEP player 2 plays the stream', p2.res.status === 201 && p2.decoded > 5, JSON.stringify({ res: p2.res, decoded: p2.decoded }));
  const two = await until(() => rowPlayers(page), n => n === 2);
  r.check('the stream row shows 2 players', two === 2, `${two}`);

  // An RTMP player (FFmpeg) for up to 60 s, to be kicked in 5.
  rtmpPlayer = run('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-rw_timeout', '8000000', '-i', rtmpUrl,
    '-t', '60', '-f', 'null', '-'], 90000);
  const rtmpPlayerStart = Date.now();
  let rtmpEnded = null;
  rtmpPlayer.done.then(res => { rtmpEnded = { ...res, ms: Date.now() - rtmpPlayerStart }; });
  const rtmpPlayerId = await waitFor('the RTMP player\'s session', async () =>
    (await apiSessions()).find(s => s.protocol === 'rtmp' && s.role === 'player' && s.state === 'playing')?.id, 10000).catch(() => '');

  const players = await until(async () => [await sessionRow(page, p1.id), await sessionRow(page, p2.id), await sessionRow(page, rtmpPlayerId)],
    rows => rows?.every(x => x) && Number(rows[0].bitrate.value) > 0 && Number(rows[1].bitrate.value) > 0, 8000);
  const apiList = await apiSessions();
  for (const [i, pr] of (players || []).entries()) {
    const id = [p1.id, p2.id, rtmpPlayerId][i], api = apiList.find(s => s.id === id);
    const proto = i < 2 ? 'webrtc' : 'rtmp', who = i < 2 ? `WHEP player ${i + 1}` : 'the RTMP player';
    r.check(`${who}'s row (${proto}): role player, the stream, its remote address, state, a kick button`,
      pr && pr.protocol.value === proto && pr.role.text === 'player' && pr.stream.text === NAME && pr.remote.text === api?.remote &&
      /^127\.0\.0\.1:\d+$/.test(pr.remote.text) && pr.state.text === api?.state && pr.kick, JSON.stringify({ pr, api: api && { remote: api.remote, state: api.state } }));
    if (i < 2) {
      r.check(`${who}'s row: a bitrate, an RTT in ms or –, loss – (the API has none for players)`,
        pr && Number(pr.bitrate.value) > 20e3 && /^(\d+\.\d ms|–)$/.test(pr.rtt.text) && pr.loss.text === '–' && /^\d+:\d\d$/.test(pr.duration.text),
        JSON.stringify(pr && { bitrate: pr.bitrate, rtt: pr.rtt, loss: pr.loss, duration: pr.duration }));
    }
  }
  if (!players?.every(x => x)) r.check('the players\' rows appear', false, JSON.stringify({ ids: [p1.id, p2.id, rtmpPlayerId], shown: await sessionIds(page) }));

  // 4. The charts: a point a second.
  await page.bringToFront(); // background tabs may run their timers late
  const t0 = Date.now();
  const c0 = await until(async () => (await streamRow(page, NAME))?.charts, c => c?.bitrate?.points > 10, 20000);
  await sleep(5000);
  const c1 = (await streamRow(page, NAME))?.charts;
  note(`charts: bitrate ${c0?.bitrate?.points} points, ${c1?.bitrate?.points} 5 s later (after ${Date.now() - t0} ms), players max ${c1?.players?.max}`);
  r.check('the ingest bitrate chart has more than 10 points, all drawn',
    c1?.bitrate?.points > 10 && c1.bitrate.drawn === c1.bitrate.points, JSON.stringify(c1?.bitrate));
  r.check('the ingest bitrate chart gains a point a poll, at most one a second (2 to 6 in 5 s)',
    c1?.bitrate?.points - c0?.bitrate?.points >= 2 && c1.bitrate.points - c0.bitrate.points <= 6, JSON.stringify([c0?.bitrate, c1?.bitrate]));
  r.check('the players chart has as many points and its top is 2', c1?.players?.points === c1?.bitrate?.points && c1.players.max === 2, JSON.stringify(c1?.players));

  // 5. Kick: the WHEP player 1, then the RTMP player.
  page.on('dialog', d => d.accept());
  // Session ids are 16 letters and digits from the server: safe in a selector.
  const kick = (id) => page.click(`#sessions tbody tr[data-session="${id}"] button[data-action=kick]`, { timeout: 5000 });
  await kick(p1.id);
  const gone = await until(async () => !(await apiSessions()).some(s => s.id === p1.id), x => x === true, 5000);
  r.check('Kick on WHEP player 1: the API lists it no more', gone === true);
  const ended = await request(`${base}/api/v1/sessions/${p1.id}`, { headers: admin });
  r.check('Kick on WHEP player 1: the API shows it ended by the kick', ended.json?.state === 'ended' && /kicked/.test(ended.json?.ended_reason), `${ended.status} ${ended.json?.ended_reason}`);
  const seen = await until(() => p1.page.evaluate(() => ({ state: window.pc.connectionState, dtls: window.pc.getReceivers()[0].transport?.state, states: window.states })),
    x => x && (x.state !== 'connected' || x.dtls === 'closed'), 10000);
  note(`WHEP player 1 after the kick: connectionState ${seen?.state}, DTLS ${seen?.dtls}; states ${seen?.states?.join(', ')}`);
  r.check('Kick on WHEP player 1: its peer connection in the page ends', seen && (seen.state !== 'connected' || seen.dtls === 'closed'), JSON.stringify(seen));
  const f0 = await p1.frames(); await sleep(1500); const f1 = await p1.frames();
  r.check('Kick on WHEP player 1: it decodes no more frames', f1 - f0 <= 2, `${f0} -> ${f1}`);
  const rowGone = await until(async () => (await sessionIds(page)).includes(p1.id), x => x === false, 4000);
  r.check('Kick on WHEP player 1: its row leaves the table, player 2\'s stays', rowGone === false && (await sessionIds(page)).includes(p2.id));
  const back = await until(() => rowPlayers(page), n => n === 1);
  r.check('the stream row shows 1 player again', back === 1, `${back}`);
  const said = await page.textContent('#action');
  r.check('the page says who was kicked', said.includes(`kicked player ${p1.id} (${NAME}, 127.0.0.1:`), said);

  if (rtmpPlayerId) {
    await kick(rtmpPlayerId);
    const rtmpGone = await until(async () => !(await apiSessions()).some(s => s.id === rtmpPlayerId), x => x === true, 5000);
    const ffEnded = await until(async () => rtmpEnded, x => !!x, 10000);
    r.check('Kick on the RTMP player: the API lists it no more and FFmpeg\'s connection ends well before its 60 s',
      rtmpGone === true && ffEnded && ffEnded.ms < 45000, JSON.stringify({ rtmpGone, ended: ffEnded && { code: ffEnded.code, ms: ffEnded.ms, err: ffEnded.err.slice(0, 200) } }));
  }

  // 6. ?token= in a new tab (no sessionStorage yet): it is used and leaves the address bar.
  const viaUrl = await chromium.context.newPage();
  await viaUrl.goto(`${base}/console.html?token=${encodeURIComponent(TOKEN)}`);
  const viaRows = await until(() => sessionIds(viaUrl), ids => ids?.includes(pubId));
  const url = viaUrl.url();
  r.check('?token= lists the sessions and is taken out of the address bar', viaRows?.includes(pubId) && !url.includes('token'), url);
  await viaUrl.reload();
  const afterReload = await until(() => sessionIds(viaUrl), ids => ids?.includes(pubId));
  r.check('after a reload the tab still has the token (sessionStorage)', afterReload?.includes(pubId));
  await viaUrl.close();

  // 7. A page whose API answers are replaced: first nothing answers (the polls back off), then
  //    a stream and a session named with HTML.
  const fake = await chromium.context.newPage();
  fake.on('pageerror', e => r.check('the console throws no error (replaced answers)', false, e.message));
  const hits = [];
  await fake.route('**/api/v1/**', route => { hits.push(Date.now()); return route.abort('connectionrefused'); });
  await fake.goto(`${base}/console.html`);
  await sleep(8500);
  const streamHits = hits.length / 2; // streams and sessions per poll
  const st = await fake.evaluate(() => ({ ...document.getElementById('status').dataset, text: document.getElementById('status').textContent }));
  note(`with no answer: ${streamHits} polls in 8.5 s; status ${JSON.stringify(st)}`);
  r.check('with no answer the page says so and backs off to 5 s (at most 6 polls in 8.5 s, not 9)',
    st.state === 'error' && /trying again in \d+ s/.test(st.text) && streamHits >= 3 && streamHits <= 6 && Number(st.delay) <= 5000, JSON.stringify({ streamHits, st }));
  await fake.unroute('**/api/v1/**');
  const EVIL = '<img src=x onerror="window.__pwned=1">';
  await fake.route('**/api/v1/streams', route => route.fulfill({ json: { count: 1, streams: [{
    app: 'live', stream: EVIL, name: `live/${EVIL}`, age_ms: 1000, publishing: true, source: 'webrtc', players: 1, bitrate_in_bps: 123000,
    tracks: [{ kind: 'video', codec: `<b>${EVIL}</b>` }] }] } }));
  await fake.route('**/api/v1/sessions', route => route.fulfill({ json: { count: 1, sessions: [{
    id: '<i>x</i>', protocol: 'webrtc', signaling: 'whep', role: 'player', app: 'live', stream: EVIL, state: '<u>s</u>',
    remote: `<script>window.__pwned=2</script>`, age_ms: 1000, bytes_in: 1, bytes_out: 1 }] } }));
  await fake.evaluate(() => { document.getElementById('token').value = 'x'; document.getElementById('auth-form').requestSubmit(); });
  const evilRow = await until(() => streamRow(fake, `live/${EVIL}`), x => !!x, 5000);
  const evilSession = await until(() => sessionRow(fake, '<i>x</i>'), x => !!x, 5000);
  const dom = await fake.evaluate(() => ({ pwned: window.__pwned ?? null,
    elements: document.querySelectorAll('#streams tbody img, #streams tbody b, #sessions tbody i, #sessions tbody u, #sessions tbody script').length,
    link: [...document.querySelectorAll('#streams tbody a')].map(a => a.getAttribute('href')) }));
  r.check('a stream named with HTML renders as text (name, codecs), no element made of it',
    evilRow?.name?.text === `live/${EVIL}` && evilRow.codecs.text === `<b>${EVIL}</b>` && dom.elements === 0 && dom.pwned === null,
    JSON.stringify({ name: evilRow?.name, codecs: evilRow?.codecs, dom }));
  r.check('a session with HTML in its fields renders as text', evilSession?.stream?.text === `live/${EVIL}` &&
    evilSession.remote.text === '<script>window.__pwned=2</script>' && evilSession.state.text === '<u>s</u>' && dom.pwned === null,
    JSON.stringify(evilSession));
  r.check('its play link carries the name URL-encoded', dom.link.length === 1 && dom.link[0].startsWith('play.html?app=live&stream=%3Cimg'), JSON.stringify(dom.link));
  await fake.close();

  await p1.page.close();
  await p2.page.close();
} catch (e) {
  r.check('the test ran to its end', false, e.stack || String(e));
} finally {
  await chromium.close();
  publisher.proc.kill('SIGINT');
  rtmpPlayer?.proc.kill('SIGINT');
  await Promise.race([Promise.all([publisher.done, rtmpPlayer?.done]), sleep(5000)]);
}
process.exit(r.done());
