// The agent's protobuf shapes to and from the control plane's rows: capsule states, expiry times,
// pause modes, timeout actions and metrics. Nothing else in the services speaks protobuf enums.
import type { PauseMode } from '@wrenn/protocol';
import {
  type Capsule as PbCapsule,
  type GetCapsuleMetricsResponse as PbCapsuleMetrics,
  PauseMode as PbPauseMode,
  CapsuleState as PbState,
  TimeoutAction as PbTimeoutAction,
} from '@wrenn/protocol/gen/hostagent/v1/hostagent_pb';
import type { CapsuleState, TimeoutAction } from '../../db/repositories/capsules.js';
import type { CapsuleMetrics } from './metrics.js';

const FROM_PB: Record<PbState, CapsuleState> = {
  [PbState.UNSPECIFIED]: 'error',
  [PbState.STARTING]: 'starting',
  [PbState.RUNNING]: 'running',
  [PbState.PAUSED]: 'paused',
  [PbState.HIBERNATED]: 'hibernated',
  [PbState.STOPPED]: 'stopped',
  [PbState.ERROR]: 'error',
};

export const stateFromAgent = (s: PbState): CapsuleState => FROM_PB[s] ?? 'error';

export const expiresFromAgent = (c: PbCapsule | undefined): Date | null =>
  c && c.expiresAt > 0n ? new Date(Number(c.expiresAt)) : null;

/** No mode: the runtime's best (freezer for namespaces, a memory snapshot to disk for VMs). */
export const pauseModeToAgent = (mode: PauseMode | undefined): PbPauseMode =>
  mode === 'hibernate' ? PbPauseMode.HIBERNATE : mode === 'freeze' ? PbPauseMode.FREEZE : PbPauseMode.UNSPECIFIED;

/** The agent applies the timeout itself: destroy, pause, or a disk-only pause (hibernate). */
export const timeoutActionToAgent = (action: TimeoutAction): PbTimeoutAction =>
  action === 'kill'
    ? PbTimeoutAction.DESTROY
    : action === 'hibernate'
      ? PbTimeoutAction.HIBERNATE
      : PbTimeoutAction.PAUSE;

export const metricsFromAgent = (m: PbCapsuleMetrics): CapsuleMetrics => ({
  cpuUsedPct: m.cpuUsedPct,
  cpuCount: m.cpuCount,
  memUsedBytes: Number(m.memUsedBytes),
  memTotalBytes: Number(m.memTotalBytes),
  diskUsedBytes: Number(m.diskUsedBytes),
  diskTotalBytes: Number(m.diskTotalBytes),
  pids: m.pids,
  timestamp: new Date(Number(m.timestamp) || Date.now()),
});
