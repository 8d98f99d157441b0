// A process that plays the VMM side of a UFFD restore, for tests and benchmarks: it registers an
// anonymous region for missing-page faults, hands the userfaultfd and the region description to
// the handler's socket exactly as Firecracker does (JSON + SCM_RIGHTS), then reads its whole memory
// (every page faults once and is filled by the handler) and writes it to a file.
// Usage: node vmm-side.js <socketPath> <sizeBytes> <outFile> [regionCount]
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { native } from './binding.js';
import { toFirecrackerMappings } from './mappings.js';

export const VMM_SIDE_SCRIPT = fileURLToPath(import.meta.url);

if (process.argv[1] === VMM_SIDE_SCRIPT) {
  const [socketPath, sizeArg, outFile, regionsArg] = process.argv.slice(2);
  const size = Number(sizeArg);
  const count = Number(regionsArg ?? 2);
  if (!socketPath || !outFile || !Number.isSafeInteger(size) || size % (4096 * count) !== 0) {
    console.error('usage: vmm-side.js <socketPath> <sizeBytes (multiple of 4096 x regions)> <outFile> [regionCount]');
    process.exit(2);
  }
  const n = native();
  const reg = n.registerRegion(size);
  const part = size / count;
  const regions = Array.from({ length: count }, (_, i) => ({
    base: reg.addr + i * part,
    size: part,
    offset: i * part,
    pageSize: 4096,
  }));
  n.sendFd(socketPath, reg.uffd, toFirecrackerMappings(regions));
  const started = process.hrtime.bigint();
  const mem = n.readMemory(reg.addr, size);
  const ns = Number(process.hrtime.bigint() - started);
  writeFileSync(outFile, mem);
  console.log(JSON.stringify({ pages: size / 4096, readNs: ns }));
}
