export { type Accel, type AccelChoice, detectAccel } from './accel.js';
export { createQemuRuntime, QemuRuntime, type QemuRuntimeOptions, type QemuState } from './qemu-runtime.js';
export { QmpClient, type QmpEvent } from './qmp.js';
