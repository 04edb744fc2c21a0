import { describe, expect, it } from 'vitest';
import {
  baseRuleset,
  hostResolvers,
  REFUSED_IPV4,
  REFUSED_IPV6,
  sandboxRules,
} from '../../../../src/drivers/crun/egress.js';

describe('egress rules (nftables scripts)', () => {
  const base = baseRuleset('alacarte_t1', ['192.0.2.53']);

  it('refuses every range API.md forbids, the host itself and port 25', () => {
    for (const range of ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '169.254.0.0/16', '100.64.0.0/10'])
      expect(REFUSED_IPV4).toContain(range);
    for (const range of ['fc00::/7', 'fe80::/10']) expect(REFUSED_IPV6).toContain(range);
    expect(base).toContain('add rule inet alacarte_t1 refuse fib daddr type local drop');
    expect(base).toContain(`ip daddr { ${REFUSED_IPV4.join(', ')} } drop`);
    expect(base).toContain('add rule inet alacarte_t1 refuse tcp dport 25 drop');
  });

  it('lets DNS reach the resolver only, and before the private ranges are refused', () => {
    const lines = base.split('\n');
    const allow = lines.findIndex((l) => l.includes('ip daddr 192.0.2.53') && l.endsWith('dport 53 accept'));
    const deny = lines.findIndex((l) => l.endsWith('th dport 53 drop'));
    const ranges = lines.findIndex((l) => l.includes('10.0.0.0/8'));
    expect(allow).toBeGreaterThan(0);
    expect(allow).toBeLessThan(deny);
    expect(deny).toBeLessThan(ranges);
  });

  it('dispatches on the uid of the sockets (output) and the mark of their connections (input)', () => {
    expect(base).toContain('add rule inet alacarte_t1 output meta skuid vmap @out_uids');
    expect(base).toContain('add rule inet alacarte_t1 input ct mark vmap @in_marks');
    const rules = sandboxRules('alacarte_t1', 'w0123456789ab', 1_234_567, 8);
    expect(rules).toContain('add rule inet alacarte_t1 o_w0123456789ab ct mark set 1234567');
    // 8 Mbit/s = 1 000 000 bytes/s, both ways.
    expect(rules.match(/limit rate over 1000000 bytes\/second drop/g)).toHaveLength(2);
    expect(rules).toContain('add element inet alacarte_t1 out_uids { 1234567 : jump o_w0123456789ab }');
    expect(rules).toContain('add element inet alacarte_t1 in_marks { 1234567 : jump i_w0123456789ab }');
    // The refusals come after the cap, for every packet of the uid.
    expect(rules.indexOf('jump refuse')).toBeGreaterThan(rules.indexOf('limit rate'));
  });

  it('reads the host resolvers from resolv.conf (IPv4, at most three)', () => {
    const conf =
      '# comment\nnameserver 10.255.255.53\nnameserver ::1\nsearch example\nnameserver 192.0.2.1\nnameserver 192.0.2.2\nnameserver 192.0.2.3\n';
    expect(hostResolvers(conf)).toEqual(['10.255.255.53', '192.0.2.1', '192.0.2.2']);
    expect(hostResolvers('')).toEqual([]);
  });
});
