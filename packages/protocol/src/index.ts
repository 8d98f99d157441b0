// Wrenn's wire protocols: the capsule contract (limits, defaults, states, rules and the native
// API's JSON schemas) and the generated protobuf-es code of the agent and envd services.

export { create, fromBinary, fromJson, toBinary, toJson } from '@bufbuild/protobuf';
export { timestampFromMs, timestampMs } from '@bufbuild/protobuf/wkt';
export * from './connect-errors.js';
export * from './contract/index.js';
export * from './contract/json.js';
export * from './contract/network-schemas.js';
export * from './contract/plain-fields.js';
export * from './contract/resources.js';
export * from './contract/schemas.js';
export * from './contract/volume-schemas.js';
export * from './errors.js';
export * as filesystem from './gen/envd/filesystem_pb.js';
export * as process from './gen/envd/process_pb.js';
export * as hostagent from './gen/hostagent/v1/hostagent_pb.js';
