// Worker thread of a UFFD handler: waits for the VMM's connection, then serves page faults until
// the VMM goes away or the parent writes to the stop pipe. Blocking calls are fine here.
import { parentPort, workerData } from 'node:worker_threads';
import { native } from './binding.js';
import { parseFirecrackerMappings } from './mappings.js';

interface Data {
  socketPath: string;
  timeoutMs: number;
  blockSize: number;
  blockGen: Int32Array;
  files: string[];
  stopFd: number;
  prefetchPages: number;
}

const d = workerData as Data;
const n = native();
let uffd = -1;
try {
  const got = n.receiveUffd(d.socketPath, d.timeoutMs);
  uffd = got.uffd;
  const regions = parseFirecrackerMappings(got.body);
  const memEnd = Math.max(...regions.map((r) => r.offset + r.size));
  if (memEnd > d.blockGen.length * d.blockSize) {
    throw new Error(
      `the VMM's memory (${memEnd} bytes) is larger than the snapshot header covers (${d.blockGen.length * d.blockSize})`,
    );
  }
  for (const r of regions) {
    if (d.blockSize % r.pageSize !== 0)
      throw new Error(`block size ${d.blockSize} is not a multiple of the page size ${r.pageSize}`);
  }
  parentPort?.postMessage({ type: 'connected', regions });
  const stats = n.serveFaults({
    uffd,
    regions,
    blockSize: d.blockSize,
    blockGen: d.blockGen,
    files: d.files,
    stopFd: d.stopFd,
    prefetchPages: d.prefetchPages,
  });
  parentPort?.postMessage({ type: 'done', stats });
} catch (err) {
  parentPort?.postMessage({ type: 'error', message: (err as Error).message });
} finally {
  if (uffd >= 0) n.closeFd(uffd);
}
