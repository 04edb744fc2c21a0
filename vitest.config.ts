import { existsSync } from 'node:fs';
import { defineConfig } from 'vitest/config';

/**
 * The suites that run a second time on PostgreSQL (project `postgres`): the store contract, the
 * mint's and the lease money rules. Their helpers (test/helpers/postgres.ts) open a database of the
 * run's own PostgreSQL server instead of SQLite there.
 */
const ON_POSTGRES = [
  'test/integration/store/*.test.ts',
  'test/unit/mint/*.test.ts',
  'test/integration/mint/*.test.ts',
  'test/integration/sdk/*.test.ts',
  'test/integration/rails/*.test.ts',
  'test/integration/payouts/*.test.ts',
  'test/integration/leases/money-rules.test.ts',
  'test/integration/leases/idempotency.test.ts',
  'test/integration/leases/fees.test.ts',
  'test/integration/leases/reaper.test.ts',
  'test/integration/leases/validate-before-money.test.ts',
  'test/integration/leases/ending-races.test.ts',
  'test/integration/replicas/*.postgres.test.ts',
];
// Without the server binaries only the store contract runs there, and skips saying why.
const postgresInstalled = existsSync(
  `${process.env.ALACARTE_POSTGRES_BIN ?? '/usr/lib/postgresql/15/bin'}/postgres`,
);

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Integration suites start real servers and sandboxes; two cores do not like many at once.
    maxWorkers: 2,
    // Removes the sandboxes a file's served nodes left running (test/helpers/cli.ts).
    setupFiles: ['test/helpers/after-file.ts'],
    projects: [
      {
        extends: true,
        test: {
          name: 'sqlite',
          include: ['test/**/*.test.ts'],
          exclude: ['**/node_modules/**', 'test/**/*.postgres.test.ts'],
        },
      },
      {
        extends: true,
        test: {
          name: 'postgres',
          include: postgresInstalled ? ON_POSTGRES : ['test/integration/store/*.postgres.test.ts'],
          exclude: ['**/node_modules/**', 'test/**/*.sqlite.test.ts'],
          env: { ALACARTE_TEST_STORE: 'postgres' },
          globalSetup: ['test/helpers/postgres-global.ts'],
        },
      },
    ],
  },
});
