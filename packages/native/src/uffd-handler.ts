// A page-fault handler for a VM restored with a UFFD memory backend (Firecracker's
// `mem_backend: { backend_type: "Uffd", backend_path }`): listens on `socketPath`, receives the
// userfaultfd and the guest memory regions, and fills each faulting page from the generation file
// the snapshot header names for its block (zero pages for blocks no generation holds).
import { writeSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { native } from './binding.js';
import type { GuestRegionMapping } from './mappings.js';

export interface UffdHandlerOptions {
  socketPath: string;
  /** Bytes per header block (a multiple of the guest page size). */
  blockSize: number;
  /** Generation index per block (-1: never written, served as zeros). */
  blockGen: Int32Array;
  /** Generation files (index = generation), each laid out like guest memory (sparse where absent). */
  files: string[];
  /** Pages filled per fault when the following ones come from the same generation (default 16; 1 = exactly the faulting page). */
  prefetchPages?: number;
  /** How long to wait for the VMM to connect (default 30 s). */
  connectTimeoutMs?: number;
}

export interface UffdStats {
  faults: number;
  copiedBytes: number;
  zeroPages: number;
  removeEvents: number;
}

export interface UffdHandler {
  /** Resolves when the VMM connected and sent its regions. */
  connected: Promise<GuestRegionMapping[]>;
  /**
   * Resolves with the counters when serving ends: on stop(). A userfaultfd does not report that its
   * VMM exited, so callers watch the VMM process and stop the handler when it is gone.
   */
  done: Promise<UffdStats>;
  stop(): Promise<UffdStats>;
}

export function startUffdHandler(opts: UffdHandlerOptions): UffdHandler {
  if (!opts.socketPath) throw new Error('socketPath is required');
  if (!Number.isInteger(opts.blockSize) || opts.blockSize < 4096 || opts.blockSize % 4096 !== 0) {
    throw new Error(`blockSize must be a multiple of 4096, got ${opts.blockSize}`);
  }
  if (!(opts.blockGen instanceof Int32Array)) throw new Error('blockGen must be an Int32Array');
  for (const g of opts.blockGen) {
    if (g >= opts.files.length)
      throw new Error(`the header names generation ${g} but only ${opts.files.length} files were given`);
  }
  const [stopRead, stopWrite] = native().makePipe();
  const worker = new Worker(new URL('./uffd-worker.js', import.meta.url), {
    workerData: {
      socketPath: opts.socketPath,
      timeoutMs: opts.connectTimeoutMs ?? 30_000,
      blockSize: opts.blockSize,
      blockGen: opts.blockGen,
      files: opts.files,
      stopFd: stopRead,
      prefetchPages: opts.prefetchPages ?? 16,
    },
  });
  let onConnected!: (r: GuestRegionMapping[]) => void;
  let onDone!: (s: UffdStats) => void;
  let onFail!: (e: Error) => void;
  const connected = new Promise<GuestRegionMapping[]>((res, rej) => {
    onConnected = res;
    onFail = rej;
  });
  const done = new Promise<UffdStats>((res, rej) => {
    onDone = res;
    const prevFail = onFail;
    onFail = (e) => {
      prevFail(e);
      rej(e);
    };
  });
  connected.catch(() => {});
  done.catch(() => {});
  worker.on('message', (m: { type: string; regions?: GuestRegionMapping[]; stats?: UffdStats; message?: string }) => {
    if (m.type === 'connected' && m.regions) onConnected(m.regions);
    else if (m.type === 'done' && m.stats) onDone(m.stats);
    else if (m.type === 'error') onFail(new Error(`UFFD handler: ${m.message}`));
  });
  worker.on('error', (e) => onFail(e));
  worker.on('exit', () => {
    native().closeFd(stopRead);
    native().closeFd(stopWrite);
    onFail(new Error('UFFD handler ended without serving'));
  });
  return {
    connected,
    done,
    async stop() {
      try {
        writeSync(stopWrite, 'x');
      } catch {
        // already ended
      }
      return done;
    },
  };
}
