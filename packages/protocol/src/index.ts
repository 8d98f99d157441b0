// Generated protobuf-es code for every wire protocol Wrenn speaks.
export * as process from './gen/envd/process_pb.js';
export * as filesystem from './gen/envd/filesystem_pb.js';
export * as hostagent from './gen/hostagent/v1/hostagent_pb.js';
export { create, toBinary, fromBinary, toJson, fromJson } from '@bufbuild/protobuf';
export { timestampFromMs, timestampMs } from '@bufbuild/protobuf/wkt';
