// Preloaded into a server under test (`node --import <this file> …`) when BENCH_PROFILE is set: SIGUSR2 starts the
// V8 CPU profiler (the one `node --cpu-prof` uses, same .cpuprofile format), the next SIGUSR2 stops it and writes
// $BENCH_PROFILE_DIR/<n>.cpuprofile (and <n>.memory.json: process.memoryUsage() and V8 heap spaces at that moment). The bench brackets each measured run with the two signals, so a profile holds
// that run and nothing else (no start-up, no warm-up). Not part of the product.
import { renameSync, writeFileSync } from 'node:fs';
import inspector from 'node:inspector';
import path from 'node:path';
import v8 from 'node:v8';

const dir = process.env.BENCH_PROFILE_DIR;
const heap = process.env.BENCH_HEAP_PROFILE === '1'; // also sample allocations (<n>.heapprofile)
if (dir) {
  const session = new inspector.Session();
  session.connect();
  const post = (method: string, params?: object) =>
    new Promise<unknown>((resolve, reject) =>
      session.post(method, params ?? {}, (err, res) => (err ? reject(err) : resolve(res))),
    );
  let running = false;
  let n = 0;
  let busy = Promise.resolve();
  process.on('SIGUSR2', () => {
    busy = busy.then(async () => {
      if (!running) {
        await post('Profiler.enable');
        await post('Profiler.setSamplingInterval', { interval: 200 });
        await post('Profiler.start');
        if (heap) await post('HeapProfiler.startSampling', { samplingInterval: 4096, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
        running = true;
        return;
      }
      const { profile } = (await post('Profiler.stop')) as { profile: unknown };
      if (heap) {
        const sampled = (await post('HeapProfiler.stopSampling')) as { profile: unknown };
        writeFileSync(path.join(dir, `${n + 1}.heapprofile`), JSON.stringify(sampled.profile));
      }
      running = false;
      n += 1;
      const memory = { process: process.memoryUsage(), heap_spaces: v8.getHeapSpaceStatistics() };
      writeFileSync(path.join(dir, `${n}.memory.json`), JSON.stringify(memory, null, 2));
      const file = path.join(dir, `${n}.cpuprofile`);
      writeFileSync(file + '.tmp', JSON.stringify(profile));
      renameSync(file + '.tmp', file); // appears only once complete
    });
  });
}
