// The connectivity doctor (web/doctor.html) in Chromium, asserting on its verdicts
// (window.doctorResult and the #verdicts list): a healthy server is "healthy" with both attempts
// connected; with UDP to and from the server's UDP port dropped (nftables, or iptables) it is
// "udp-blocked", naming that port, with TCP connected; with webrtc.candidates rewritten to an
// unreachable address and applied with SIGHUP it is "no-check", naming that address and the fix
// (webrtc.candidates, ?eip=); with the candidates restored it is healthy again. Every run
// deletes its sessions.
// Usage: node test_doctor.mjs BASE UDP_PORT TCP_PORT HTTP_PORT WORK SERVER_PID
import { launchBrowser, reporter } from './lib/browser.mjs';
import { firewall } from './lib/firewall.mjs';
import { waitFor, sleep } from './lib/proc.mjs';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const [base, udpPort, tcpPort, , work, serverPid] = process.argv.slice(2);
const r = reporter();
const note = (m) => console.log(`# ${m}`);
const WRONG = '198.51.100.77'; // TEST-NET-2: the default route's gateway does not exist

const fw = firewall;
const BLOCK_UDP = [`udp dport ${udpPort}`, `udp sport ${udpPort}`];

// webrtc.candidates in the server's configuration, applied with SIGHUP.
const yamlPath = join(work, 'estuary.yaml');
async function setCandidates(from, to) {
  const text = readFileSync(yamlPath, 'utf8');
  writeFileSync(yamlPath, text.replace(`candidates: ["${from}"]`, `candidates: ["${to}"]`));
  process.kill(Number(serverPid), 'SIGHUP');
  await sleep(1000);
  return text.includes(`candidates: ["${from}"]`);
}

// Opens the page, clicks "Run the checks" and returns window.doctorResult, with the codes of
// the #verdicts list and the time taken.
async function doctor(page, label) {
  await page.goto(`${base}/doctor.html`);
  await page.waitForFunction(() => typeof window.runDoctor === 'function');
  const t0 = Date.now();
  await page.click('#run');
  await page.waitForFunction(() => window.doctorResult?.done, null, { timeout: 40000 });
  const res = await page.evaluate(() => window.doctorResult);
  res.ms = Date.now() - t0;
  res.codes = res.verdicts.map(v => v.code);
  res.listed = await page.$$eval('#verdicts li[data-code]', lis => lis.map(li => li.dataset.code));
  res.facts = await page.$$eval('#facts tr', trs => trs.length);
  note(`${label}: ${res.ms} ms; verdicts ${res.codes.join(', ') || 'none'}; udp ${res.udp?.connected ? `connected in ${res.udp.connectMs} ms` : 'not connected'}, tcp ${res.tcp?.connected ? `connected in ${res.tcp.connectMs} ms` : 'not connected'}`);
  for (const v of res.verdicts) note(`  ${v.code}: ${v.text}`);
  return res;
}
const textOf = (res, code) => res.verdicts.find(v => v.code === code)?.text || '';

// No doctor session is left open (each run DELETEs its resources).
async function noneLeft(label) {
  const left = await waitFor('the doctor sessions to end', async () => {
    const s = (await (await fetch(`${base}/api/v1/sessions`)).json()).sessions.filter(x => x.stream?.startsWith('doctor-'));
    return s.length ? null : [];
  }, 3000).catch(() => null);
  r.check(`${label}: the doctor's sessions are gone`, !!left);
}

const chromium = await launchBrowser();
try {
  const page = await chromium.context.newPage();

  // 1. Healthy.
  fw([]);
  const h = await doctor(page, 'healthy');
  r.check('healthy: both attempts connect', h.udp?.connected && h.tcp?.connected, JSON.stringify({ udp: h.udp?.error, tcp: h.tcp?.error }));
  r.check('healthy: the verdict is healthy, not udp-blocked or no-check',
    h.codes.includes('healthy') && !h.codes.includes('udp-blocked') && !h.codes.includes('no-check'), h.codes.join(','));
  r.check('healthy: the server shows a udp then a tcp session',
    h.udp?.session?.transport === 'udp' && h.tcp?.session?.transport === 'tcp', JSON.stringify([h.udp?.session?.pair, h.tcp?.session?.pair]));
  r.check('healthy: the page lists the verdicts and a table of facts', h.listed.join() === h.codes.join() && h.facts > 5, JSON.stringify(h.listed));
  r.check('healthy: the verdict names each pair', /192\.0\.2\.1:\d+ .*192\.0\.2\.1:\d+/.test(textOf(h, 'healthy')), textOf(h, 'healthy'));
  await noneLeft('healthy');

  // 2. UDP to the server's UDP port dropped.
  fw(BLOCK_UDP);
  const u = await doctor(page, 'UDP blocked');
  r.check('UDP blocked: the verdict is udp-blocked, not healthy', u.codes.includes('udp-blocked') && !u.codes.includes('healthy'), u.codes.join(','));
  r.check('UDP blocked: TCP connected, UDP did not', u.tcp?.connected && !u.udp?.connected && u.tcp?.session?.transport === 'tcp', JSON.stringify(u.tcp?.session?.pair));
  r.check(`UDP blocked: the verdict names the UDP port ${udpPort}`, textOf(u, 'udp-blocked').includes(`192.0.2.1:${udpPort}`) &&
    textOf(u, 'udp-blocked').includes(`UDP port ${udpPort}`), textOf(u, 'udp-blocked'));
  r.check('UDP blocked: the UDP session saw no check', !(u.udp?.session?.timeline || []).some(e => e.event.startsWith('check from')),
    JSON.stringify(u.udp?.session?.timeline));
  await noneLeft('UDP blocked');
  fw([]);

  // 3. A candidate nobody can reach, applied with SIGHUP.
  r.check('the configuration has candidates: ["192.0.2.1"]', await setCandidates('192.0.2.1', WRONG));
  const w = await doctor(page, 'wrong candidate');
  const nc = textOf(w, 'no-check');
  r.check('wrong candidate: the verdict is no-check', w.codes.includes('no-check') && !w.codes.includes('healthy'), w.codes.join(','));
  r.check('wrong candidate: the server offered the new candidate', w.udp?.session?.candidates?.includes(`udp ${WRONG}:${udpPort}`) &&
    w.tcp?.session?.candidates?.includes(`tcp ${WRONG}:${tcpPort}`), `${w.udp?.session?.candidates} | ${w.tcp?.session?.candidates}`);
  r.check(`wrong candidate: the verdict names ${WRONG} and the page's host, and says webrtc.candidates and ?eip=`,
    nc.includes(WRONG) && nc.includes('reached it at 127.0.0.1') && nc.includes('webrtc.candidates') && nc.includes('?eip=127.0.0.1'), nc);
  await noneLeft('wrong candidate');

  // 4. Restored.
  await setCandidates(WRONG, '192.0.2.1');
  const back = await doctor(page, 'restored');
  r.check('restored: healthy again', back.codes.includes('healthy'), back.codes.join(','));
} catch (e) {
  r.check('the test ran to the end', false, e.stack);
} finally {
  fw([]);
  await chromium.close();
}
process.exit(r.done());
