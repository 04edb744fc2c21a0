import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, publicUrl, sshPortSetting } from '../../src/config.js';

describe('loadConfig', () => {
  it('has working defaults', () => {
    const c = loadConfig();
    expect(c.host).toBe('127.0.0.1');
    expect(c.port).toBe(8402);
    expect(c.mint.maxInputs).toBe(1000);
    expect(c.mint.inputFeePpk).toBe(0);
    expect(c.mint.lightning.backend).toBe('fake');
    expect(c.mint.nut17).toEqual({ maxSubscriptionsPerConnection: 100, maxSubscriptionsPerAddress: 300 });
    expect(publicUrl(c)).toBe('http://127.0.0.1:8402');
  });

  it('layers file, then environment, then flags', () => {
    const dir = mkdtempSync(join(tmpdir(), 'alacarte-config-'));
    const file = join(dir, 'config.json');
    writeFileSync(file, JSON.stringify({ port: 9000, host: '0.0.0.0', mint: { inputFeePpk: 100 } }));
    const c = loadConfig({ file, env: { ALACARTE_PORT: '9100' }, flags: { host: '127.0.0.2' } });
    expect(c.port).toBe(9100);
    expect(c.host).toBe('127.0.0.2');
    expect(c.mint.inputFeePpk).toBe(100);
    expect(c.mint.maxOutputs).toBe(1000);
  });

  it('makes sandboxes ahead by default (2 per image and disk size, up to 128 by demand, 1 at a time), as configured', () => {
    expect(loadConfig().pool).toEqual({ size: 2, max: 128, concurrency: 1 });
    const c = loadConfig({ flags: { pool: { size: 100, images: ['busybox'] } } });
    expect(c.pool).toEqual({ size: 100, max: 128, concurrency: 1, images: ['busybox'] });
    expect(() => loadConfig({ flags: { pool: { concurrency: 0 } } })).toThrow(/pool\.concurrency/);
    expect(() => loadConfig({ flags: { pool: { images: ['../etc'] } } })).toThrow(/pool\.images/);
  });

  it('names what is wrong', () => {
    expect(() => loadConfig({ env: { ALACARTE_PORT: 'eighty' } })).toThrow(/port/);
    expect(() => loadConfig({ flags: { port: 70_000 } })).toThrow(ConfigError);
    expect(() => loadConfig({ file: '/nonexistent/alacarte.json' })).toThrow(/cannot read config file/);
  });

  it('takes an offer written with the keys the README lists (price without its unit), and names a missing one as required', () => {
    const dir = mkdtempSync(join(tmpdir(), 'alacarte-config-'));
    const file = join(dir, 'config.json');
    const tiny = {
      id: 'tiny',
      vcpu: 0.5,
      memory_mib: 128,
      pids: 64,
      disk_mib: 64,
      price: { amount_per_hour: 6 },
    };
    writeFileSync(file, JSON.stringify({ offers: [tiny] }));
    expect(loadConfig({ file }).offers?.[0]?.price).toEqual({ amount_per_hour: 6, unit: 'sat' });
    const { pids: _pids, ...noPids } = tiny;
    writeFileSync(file, JSON.stringify({ offers: [noPids] }));
    expect(() => loadConfig({ file })).toThrow('invalid configuration: offers.0.pids: required');
  });

  it('serves SSH on 2222 by default; the port is set by file, env or flag, and `off` turns it off', () => {
    expect(loadConfig().ssh).toEqual({ enabled: true, port: 2222 });
    const dir = mkdtempSync(join(tmpdir(), 'alacarte-config-'));
    const file = join(dir, 'config.json');
    writeFileSync(file, JSON.stringify({ ssh: { port: 2022 } }));
    expect(loadConfig({ file }).ssh).toEqual({ enabled: true, port: 2022 });
    expect(loadConfig({ env: { ALACARTE_SSH_PORT: '2200' } }).ssh).toEqual({ enabled: true, port: 2200 });
    expect(loadConfig({ env: { ALACARTE_SSH_PORT: 'off' } }).ssh.enabled).toBe(false);
    expect(loadConfig({ flags: { ssh: sshPortSetting('0') } }).ssh.port).toBe(0);
    expect(() => loadConfig({ env: { ALACARTE_SSH_PORT: 'twenty-two' } })).toThrow(/ssh.port/);
  });

  it('runs crun by default; ALACARTE_DRIVER=lxd picks LXD and keeps the file settings of that kind', () => {
    expect(loadConfig().driver).toEqual({ kind: 'crun' });
    expect(loadConfig({ env: { ALACARTE_DRIVER: 'lxd' } }).driver).toEqual({
      kind: 'lxd',
      storagePool: 'default',
    });
    const dir = mkdtempSync(join(tmpdir(), 'alacarte-config-'));
    const file = join(dir, 'config.json');
    writeFileSync(
      file,
      JSON.stringify({ driver: { kind: 'lxd', socket: '/run/lxd.sock', storagePool: 'fast' } }),
    );
    const lxd = { kind: 'lxd', socket: '/run/lxd.sock', storagePool: 'fast' };
    expect(loadConfig({ file }).driver).toEqual(lxd);
    expect(loadConfig({ file, env: { ALACARTE_DRIVER: 'lxd' } }).driver).toEqual(lxd);
    expect(loadConfig({ file, env: { ALACARTE_DRIVER: 'crun' } }).driver).toEqual({ kind: 'crun' });
    expect(() => loadConfig({ env: { ALACARTE_DRIVER: 'docker' } })).toThrow(/driver/);
    // A remote cluster needs the client certificate, its key and the pinned server certificate.
    expect(() =>
      loadConfig({ flags: { driver: { kind: 'lxd', url: 'https://lxd1.example:8443' } } }),
    ).toThrow(/clientCertPath/);
  });

  it("reads an offer's network and bandwidth cap, and the egress resolver", () => {
    const offer = {
      id: 'net',
      vcpu: 1,
      memory_mib: 256,
      pids: 64,
      disk_mib: 256,
      price: { amount_per_hour: 10, unit: 'sat' as const },
    };
    const c = loadConfig({
      flags: {
        offers: [
          { ...offer, network: 'egress', bandwidth_mbit: 20 },
          { ...offer, id: 'plain' },
        ],
        egress: { dns: '192.0.2.53' },
      },
    });
    expect(c.offers?.[0]).toMatchObject({ network: 'egress', bandwidth_mbit: 20 });
    expect(c.offers?.[1]).toMatchObject({ network: 'none' });
    expect(c.egress.dns).toBe('192.0.2.53');
    expect(loadConfig().egress.dns).toBeUndefined();
    expect(() => loadConfig({ flags: { offers: [{ ...offer, network: 'full' as 'none' }] } })).toThrow(
      /network/,
    );
    expect(() => loadConfig({ flags: { egress: { dns: 'dns.example' } } })).toThrow(/egress\.dns/);
    expect(() => loadConfig({ flags: { egress: { dns: '127.0.0.53' } } })).toThrow(/loopback/);
  });
  it('has x402 off by default, and takes the operator network, asset, payee, rate and RPC URL', () => {
    expect(loadConfig().x402).toBeUndefined();
    const x402 = {
      network: 'eip155:8453',
      rpcUrl: 'http://127.0.0.1:8545',
      asset: '0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913',
      payTo: '0x70997970C51812dc3A010C7d01b50e0d17dc79C8',
      rate: { atomicUnits: '900' },
    };
    expect(loadConfig({ flags: { x402 } }).x402).toEqual({
      ...x402,
      enabled: true,
      assetName: 'USD Coin',
      assetVersion: '2',
      rate: { atomicUnits: '900', sats: 1 },
      maxTimeoutSeconds: 300,
      confirmationTimeoutMs: 60_000,
    });
    for (const bad of [
      { ...x402, network: 'base' },
      { ...x402, asset: '0x1234' },
      { ...x402, payTo: 'alice' },
      { ...x402, rate: { atomicUnits: 0 } },
      { ...x402, rpcUrl: 'ftp://127.0.0.1' },
      { ...x402, facilitatorKey: 'ab'.repeat(32) },
    ])
      expect(() => loadConfig({ flags: { x402: bad as typeof x402 } })).toThrow(ConfigError);
  });
});
