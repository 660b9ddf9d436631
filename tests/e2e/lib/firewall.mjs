// Drops packets inside the test's own network namespace (CI runs as root): one nftables table of
// ours, `estuary_test`, with an output chain (iptables' OUTPUT chain when nft is missing). Rules
// are "PROTO dport|sport PORT", e.g. "udp dport 8000"; firewall([]) removes them all.
import { execFileSync } from 'node:child_process';

const haveNft = (() => {
  try { execFileSync('nft', ['--version'], { stdio: 'ignore' }); return true; } catch { return false; }
})();

export function firewall(rules) {
  if (haveNft) {
    try { execFileSync('nft', ['delete', 'table', 'inet', 'estuary_test'], { stdio: 'ignore' }); } catch {}
    if (!rules.length) return;
    const text = `table inet estuary_test {\n chain out {\n  type filter hook output priority 0; policy accept;\n${rules.map(x => `  ${x} drop\n`).join('')} }\n}\n`;
    execFileSync('nft', ['-f', '-'], { input: text });
  } else {
    try { execFileSync('iptables', ['-F', 'OUTPUT']); } catch {}
    for (const x of rules) {
      const [proto, dir, port] = x.split(' ');
      execFileSync('iptables', ['-A', 'OUTPUT', '-p', proto, dir === 'dport' ? '--dport' : '--sport', port, '-j', 'DROP']);
    }
  }
}
