// Generated protobuf-es code for every wire protocol Wrenn speaks.

export { create, fromBinary, fromJson, toBinary, toJson } from '@bufbuild/protobuf';
export { timestampFromMs, timestampMs } from '@bufbuild/protobuf/wkt';
export * from './connect-errors.js';
export * from './errors.js';
export * as filesystem from './gen/envd/filesystem_pb.js';
export * as process from './gen/envd/process_pb.js';
export * as hostagent from './gen/hostagent/v1/hostagent_pb.js';
