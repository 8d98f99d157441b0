// envd's bundle carries its protobuf file descriptors predecoded (scripts/lib/predecoded-descriptors.mjs
// writes each as an object literal; src/proto/file-desc-decoded.ts registers it). The registry
// built from a literal must be the one protobuf-es builds from the embedded base64.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { create, type DescFile, fromBinary, toBinary, toJson } from '@bufbuild/protobuf';
import { type FileDescriptorProto, file_google_protobuf_timestamp } from '@bufbuild/protobuf/wkt';
import { EntryInfoSchema, file_envd_filesystem } from '@wrenn/protocol/gen/envd/filesystem_pb';
import { file_envd_process, StartRequestSchema } from '@wrenn/protocol/gen/envd/process_pb';
import { fileDescDecoded } from '../src/proto/file-desc-decoded.js';

const plugin = (await import(new URL('../../../../scripts/lib/predecoded-descriptors.mjs', import.meta.url).href)) as {
  toLiteral(v: unknown): string;
};

function rebuild(file: DescFile, deps: DescFile[] = []): DescFile {
  const literal = plugin.toLiteral(file.proto);
  return fileDescDecoded(new Function(`return ${literal}`)() as FileDescriptorProto, deps);
}

/** What the registry derives per field: names, numbers, kinds, presence, packing, defaults. */
function shape(file: DescFile) {
  return {
    name: file.name,
    enums: file.enums.map((e) => [e.typeName, e.values.map((v) => [v.name, v.number, v.localName])]),
    services: file.services.map((s) => [
      s.typeName,
      s.methods.map((m) => [m.name, m.methodKind, m.input.typeName, m.output.typeName]),
    ]),
    messages: file.messages.map(function msg(m): unknown {
      return [
        m.typeName,
        m.fields.map((f) => [
          f.name,
          f.number,
          f.jsonName,
          f.localName,
          f.fieldKind,
          f.presence,
          f.fieldKind === 'list' ? f.packed : undefined,
          f.oneof?.name,
          f.fieldKind === 'scalar' || f.fieldKind === 'enum' ? f.getDefaultValue() : undefined,
        ]),
        m.nestedMessages.map(msg),
      ];
    }),
  };
}

test('a predecoded file descriptor registers as protobuf-es registers the embedded one', () => {
  const timestamp = rebuild(file_google_protobuf_timestamp);
  const cases: [DescFile, DescFile][] = [
    [file_google_protobuf_timestamp, timestamp],
    [file_envd_process, rebuild(file_envd_process)],
    [file_envd_filesystem, rebuild(file_envd_filesystem, [timestamp])],
  ];
  for (const [original, rebuilt] of cases) {
    assert.deepEqual(shape(rebuilt), shape(original), original.name);
    assert.deepEqual(rebuilt.proto.dependency, original.proto.dependency);
  }
});

test('messages written with the embedded descriptors read back with the predecoded ones', () => {
  const filesystem = rebuild(file_envd_filesystem, [rebuild(file_google_protobuf_timestamp)]);
  const entrySchema = filesystem.messages.find((m) => m.typeName === EntryInfoSchema.typeName);
  assert.ok(entrySchema);
  const entry = create(EntryInfoSchema, {
    name: 'a',
    path: '/a',
    size: 3n,
    modifiedTime: { seconds: 1_700_000_000n, nanos: 5 },
  });
  const back = fromBinary(entrySchema, toBinary(EntryInfoSchema, entry));
  assert.deepEqual(toJson(entrySchema, back), toJson(EntryInfoSchema, entry));

  const startSchema = rebuild(file_envd_process).messages.find((m) => m.typeName === StartRequestSchema.typeName);
  assert.ok(startSchema);
  const start = create(StartRequestSchema, {
    process: { cmd: '/bin/sh', args: ['-c', 'true'], envs: { A: 'b' } },
    tag: 't',
  });
  assert.deepEqual(
    toJson(startSchema, fromBinary(startSchema, toBinary(StartRequestSchema, start))),
    toJson(StartRequestSchema, start),
  );
});

test('the literal keeps proto2 presence: defaults stay on the prototype, set fields are own', () => {
  const literal = plugin.toLiteral(file_envd_process.proto);
  const rebuilt = new Function(`return ${literal}`)() as FileDescriptorProto;
  const field = rebuilt.messageType[0]?.field[0];
  const originalField = file_envd_process.proto.messageType[0]?.field[0];
  assert.ok(field && originalField);
  for (const key of ['defaultValue', 'oneofIndex', 'jsonName', 'proto3Optional'] as const) {
    assert.equal(Object.hasOwn(field, key), Object.hasOwn(originalField, key), key);
    assert.equal(field[key], originalField[key], key);
  }
});
