// Used only in envd's bundle, in place of protobuf-es's fileDesc(base64, deps): the bundler
// (scripts/lib/predecoded-descriptors.mjs) decodes each embedded file descriptor at build time and
// hands its FileDescriptorProto here as an object literal. At start envd then skips decoding the
// base64 protobuf and booting descriptor.proto's own descriptors (~12 ms of every capsule start).
// The rest is what fileDesc does after decoding.
import { createFileRegistry, type DescFile } from '@bufbuild/protobuf';
import type { FileDescriptorProto } from '@bufbuild/protobuf/wkt';

export function fileDescDecoded(root: FileDescriptorProto, imports?: DescFile[]): DescFile {
  root.dependency = imports?.map((f) => f.proto.name) ?? [];
  const registry = createFileRegistry(root, (name) => imports?.find((f) => f.proto.name === name));
  const file = registry.getFile(root.name);
  if (!file) throw new Error(`file descriptor ${root.name} did not register`);
  return file;
}
