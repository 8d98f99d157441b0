// process.Process service (stub until implemented).
import type { ServiceImpl } from '@connectrpc/connect';
import type { Process } from '@wrenn/protocol/gen/envd/process_pb';
import type { EnvdState } from '../state.js';

export interface ProcessServiceHandle {
  impl: Partial<ServiceImpl<typeof Process>>;
  /** Kills every process envd started (envd shutting down). */
  shutdown(): void;
}

export function processService(_state: EnvdState): ProcessServiceHandle {
  return { impl: {}, shutdown() {} };
}
