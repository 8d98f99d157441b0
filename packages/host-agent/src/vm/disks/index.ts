// Copy-on-write root disks for VM capsules (device-mapper snapshots, reflink or sparse copies).
export { type BaseLoopEntry, BaseLoops } from './base-loops.js';
export { copyArgs, copyDisk, flattenDisk } from './copy-disk.js';
export {
  type CowDisk,
  type CowDiskKind,
  CowDisks,
  type CowDisksOptions,
  createCowDisks,
  type StaleReport,
} from './cow-disks.js';
export { type DeviceMapperSupport, detectDeviceMapper, detectReflink, parseDriverVersion } from './detect.js';
export {
  CHUNK_SECTORS,
  classifyDmsetupError,
  cowBytes,
  type DmsetupFailure,
  dmCreateCommands,
  dmName,
  dmPath,
  dmRemovalOrder,
  dmRemoveCommand,
  dmUuid,
  snapshotTable,
} from './dm-snapshot.js';
export { attachArgs, attachLoop, detachLoop, type LoopDevice, listLoops, sectorsOf } from './loop.js';
