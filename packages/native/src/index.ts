export {
  type FsAsUserRequest,
  type FsAsUserResult,
  type FsEntry,
  type FsStat,
  type NativeBinding,
  native,
  type SpawnStdio,
} from './binding.js';
export {
  type ExecNativeError,
  execFileNative,
  nativeSpawnAvailable,
  type RunNativeOptions,
  type RunNativeResult,
  runNative,
  type SpawnedChild,
  type SpawnNativeOptions,
  type StdioEntry,
  spawnNative,
} from './exec-native.js';
export { type GuestRegionMapping, parseFirecrackerMappings, toFirecrackerMappings } from './mappings.js';
export { idmappedBind, loopMount, splitMountOptions, unmount } from './mounts.js';
export {
  type RelayEndReason,
  RelayedPair,
  type RelayHttp,
  type RelayOptions,
  type RelayResult,
  type RelayStats,
  relayAvailable,
  relayCloseGroup,
  relaySockets,
  relayStats,
  relayYieldGroup,
} from './relay.js';
export {
  createTlsFront,
  type TlsFront,
  type TlsFrontOptions,
  type TlsFrontSocket,
  type TlsFrontStats,
  tlsFrontAvailable,
  tlsFrontStats,
} from './tls-front.js';
export { startUffdHandler, type UffdHandler, type UffdHandlerOptions, type UffdStats } from './uffd-handler.js';
export { VMM_SIDE_SCRIPT } from './vmm-side.js';
