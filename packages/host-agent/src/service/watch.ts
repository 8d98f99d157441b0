// WatchCapsules: the agent's own state changes (a timeout's pause or destroy, a capsule that
// died) streamed to the control plane as they happen. The first message (no id) says the stream
// is open, so the watcher knows from then on nothing is missed and can settle what it may have
// missed before with one reconcile. A slow reader gets the changes queued (they are rare: one per
// capsule lifetime or pause), never dropped.
import { create } from '@bufbuild/protobuf';
import {
  type CapsuleStateChange,
  CapsuleStateChangeSchema,
  CapsuleState as PbState,
} from '@wrenn/protocol/gen/hostagent/v1/hostagent_pb';
import type { AgentStateChange, SandboxManager } from '../manager/manager.js';

const STATE: Record<AgentStateChange['state'], PbState> = {
  paused: PbState.PAUSED,
  hibernated: PbState.HIBERNATED,
  stopped: PbState.STOPPED,
  error: PbState.ERROR,
};

export async function* watchCapsules(m: SandboxManager, signal: AbortSignal): AsyncGenerator<CapsuleStateChange> {
  const queue: CapsuleStateChange[] = [];
  let wake: (() => void) | undefined;
  const off = m.onStateChange((c) => {
    queue.push(
      create(CapsuleStateChangeSchema, {
        id: c.id,
        state: STATE[c.state],
        cause: c.cause,
        error: c.error ?? '',
        at: BigInt(Date.now()),
      }),
    );
    wake?.();
  });
  const aborted = new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
  try {
    yield create(CapsuleStateChangeSchema, { at: BigInt(Date.now()) });
    while (!signal.aborted) {
      const next = queue.shift();
      if (next) {
        yield next;
        continue;
      }
      await Promise.race([new Promise<void>((resolve) => (wake = resolve)), aborted]);
      wake = undefined;
    }
  } finally {
    off();
  }
}
