// jest globalTeardown: removes what global-setup.mjs made (once, whichever project calls it first).
import { rmSync } from 'node:fs';

export default async function globalTeardown() {
  if (process.env.SAT_TEST_SETUP_DONE !== '1') return;
  process.env.SAT_TEST_SETUP_DONE = 'removed';
  // The embedded template stays for the next run (node_modules/.cache/sat-test-template) unless it was temporary.
  const dir = process.env.SAT_TEST_TEMPLATE_DIR;
  if (dir && process.env.SAT_TEST_TEMPLATE_TEMPORARY === '1') rmSync(dir, { recursive: true, force: true });
  // The run's folder on /dev/shm (global-setup.mjs scratchDir), with whatever a test file left in it.
  const scratch = process.env.SAT_TEST_SCRATCH_DIR;
  if (scratch) rmSync(scratch, { recursive: true, force: true });
  const name = process.env.SAT_TEST_PG_TEMPLATE;
  const adminUrl = process.env.TEST_DATABASE_URL;
  if (name && adminUrl) {
    const { default: pg } = await import('pg');
    const admin = new pg.Client({ connectionString: adminUrl });
    await admin.connect();
    try {
      await admin.query(`drop database if exists ${name} with (force)`);
    } finally {
      await admin.end();
    }
  }
}
