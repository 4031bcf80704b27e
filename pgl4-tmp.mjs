import { PGlite } from '@electric-sql/pglite';
const n = +process.argv[2] || 1;
for (let i = 0; i < n; i++) {
  const c0 = process.cpuUsage(); const t = performance.now();
  const db = new PGlite('/tmp/dd/pgdata', { startParams: [...PGlite.defaultStartParams, '-c', 'shared_buffers=16MB'] });
  await db.waitReady;
  await db.query('select count(*) from tokens');
  await db.close();
  const u = process.cpuUsage(c0);
  console.log(i, 'wall', (performance.now() - t).toFixed(0), 'cpu', ((u.user + u.system) / 1000).toFixed(0));
  if (globalThis.gc) gc();
}
