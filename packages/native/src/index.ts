export { type NativeBinding, native, type SpawnStdio } from './binding.js';
export { type GuestRegionMapping, parseFirecrackerMappings, toFirecrackerMappings } from './mappings.js';
export { startUffdHandler, type UffdHandler, type UffdHandlerOptions, type UffdStats } from './uffd-handler.js';
export { VMM_SIDE_SCRIPT } from './vmm-side.js';
export { relayAvailable, relayCloseGroup, relaySockets, relayStats, RelayedPair, type RelayEndReason, type RelayOptions, type RelayResult, type RelayStats } from './relay.js';
export {
  execFileNative,
  type ExecNativeError,
  nativeSpawnAvailable,
  runNative,
  type RunNativeOptions,
  type RunNativeResult,
  type SpawnedChild,
  spawnNative,
  type SpawnNativeOptions,
  type StdioEntry,
} from './exec-native.js';
