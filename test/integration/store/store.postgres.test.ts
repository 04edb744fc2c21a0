import { openStore } from '../../../src/store/database.js';
import { testDatabase, testPostgresUnavailable } from '../../helpers/postgres.js';
import { describeStoreContract } from './store.contract.js';

// The `postgres` project's own server (test/helpers/postgres-global.ts); without one, every test
// skips and says why.
const unavailable = testPostgresUnavailable();
let url: string | undefined;

describeStoreContract(
  'PostgreSQL',
  unavailable !== undefined
    ? `(skipped: ${unavailable})`
    : {
        open: async () => {
          url = await testDatabase();
          return openStore(url);
        },
        connect: () => openStore(url as string),
      },
);
