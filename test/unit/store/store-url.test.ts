import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config.js';
import { isPostgresUrl, openStore, redactStoreUrl } from '../../../src/store/database.js';

describe('store location', () => {
  it('is SQLite in the data directory unless a postgres:// URL is configured', () => {
    expect(loadConfig().store.url).toBeUndefined();
    const url = 'postgres://alacarte:s3cret@db.internal:5432/alacarte';
    expect(loadConfig({ env: { ALACARTE_STORE_URL: url } }).store.url).toBe(url);
    expect(loadConfig({ flags: { store: { url } } }).store.url).toBe(url);
    expect(isPostgresUrl(url)).toBe(true);
    expect(isPostgresUrl('postgresql://h/db')).toBe(true);
    expect(isPostgresUrl('/var/lib/alacarte/alacarte.sqlite')).toBe(false);
  });

  it('refuses another URL without repeating it (it may hold a password)', () => {
    let message = '';
    try {
      loadConfig({ env: { ALACARTE_STORE_URL: 'mysql://root:s3cret@h/db' } });
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/store\.url: must be a postgres:\/\/ URL/);
    expect(message).not.toContain('s3cret');
  });

  it('shows a URL with its password masked', () => {
    expect(redactStoreUrl('postgres://alacarte:s3cret@db:5432/a')).toBe('postgres://alacarte:***@db:5432/a');
    expect(redactStoreUrl('postgresql://u@h/db?password=s3cret&sslmode=require')).toBe(
      'postgresql://u@h/db?password=***&sslmode=require',
    );
    expect(redactStoreUrl('postgres://u@/db?host=/run/postgresql')).toBe(
      'postgres://u@/db?host=/run/postgresql',
    );
  });

  it('masks the whole of a password holding @, / , ? or # (pg takes a raw @; the others make the URL invalid)', () => {
    for (const password of ['p@ss@word', 'pa/ss', 'sec?ret', 'sec#ret', 'a@b/c']) {
      const shown = redactStoreUrl(`postgres://alacarte:${password}@db:5432/a`);
      expect(shown).toBe('postgres://alacarte:***@db:5432/a');
    }
  });

  it('never names any part of such a password when the store cannot be opened', async () => {
    // Port 1 on loopback refuses at once; the `/` makes the URL invalid before any connection.
    for (const password of ['xyzzy@plugh', 'xyzzy/plugh']) {
      const error = await openStore(`postgres://alacarte:${password}@127.0.0.1:1/alacarte`).then(
        () => undefined,
        (err: Error) => err,
      );
      expect(error?.message).toContain('postgres://alacarte:***@');
      expect(error?.message).not.toMatch(/xyzzy|plugh/);
    }
  });

  it('names the store but never its password when PostgreSQL cannot be reached', async () => {
    // Port 1 on loopback: nothing listens there, the connection is refused at once.
    const error = await openStore('postgres://alacarte:s3cret@127.0.0.1:1/alacarte').then(
      () => undefined,
      (err: Error) => err,
    );
    expect(error?.message).toContain('postgres://alacarte:***@127.0.0.1:1/alacarte');
    expect(error?.message).not.toContain('s3cret');
  });
});
