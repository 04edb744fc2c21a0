import type { TestProject } from 'vitest/node';
import { type PostgresServer, postgresUnavailable, startPostgres } from './postgres.js';

/**
 * Global setup of the `postgres` test project (vitest.config.ts): one real PostgreSQL 15 server for
 * the run, stopped at its end; each suite creates databases of its own on it. Without the server
 * binaries the suites are told why, and skip with that reason.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const unavailable = postgresUnavailable();
  if (unavailable !== undefined) {
    project.provide('postgres', { unavailable });
    return async () => {};
  }
  const server: PostgresServer = await startPostgres();
  project.provide('postgres', { baseUrl: server.baseUrl });
  return () => server.stop();
}
