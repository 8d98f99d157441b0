// filesystem.Filesystem service (stub until implemented).
import type { ServiceImpl } from '@connectrpc/connect';
import type { Filesystem } from '@wrenn/protocol/gen/envd/filesystem_pb';
import type { EnvdState } from '../state.js';

export function filesystemService(_state: EnvdState): Partial<ServiceImpl<typeof Filesystem>> {
  return {};
}
