// esbuild plugin for envd's bundle: every generated `export const file_x = fileDesc("<base64>", deps)`
// becomes `fileDescDecoded(<FileDescriptorProto as an object literal>, deps)`. The literal is the
// very object protobuf-es builds at load (its `.proto`, taken from the module itself at build time),
// own properties and prototype defaults alike (proto2 presence lives in the prototype chain), so
// the registry built at run time is the same; each literal is checked against it before use.
import { readFile } from 'node:fs/promises';
import { pathToFileURL } from 'node:url';
import { isDeepStrictEqual } from 'node:util';

const CALL = /export const (\w+) = \/\*@__PURE__\*\/ fileDesc\("([A-Za-z0-9+/=]+)"(, \[[\w, ]*\])?\);/g;

/** @param {{ helper: string }} opts absolute path of the module exporting fileDescDecoded */
export function predecodedDescriptors({ helper }) {
  return {
    name: 'predecoded-descriptors',
    setup(build) {
      build.onLoad({ filter: /_pb\.js$/ }, async (args) => {
        const source = await readFile(args.path, 'utf8');
        if (!source.includes('fileDesc("')) return undefined;
        const mod = await import(pathToFileURL(args.path).href);
        let count = 0;
        const contents = source.replace(CALL, (_all, name, _b64, deps) => {
          const file = mod[name];
          if (!file?.proto) throw new Error(`${args.path}: ${name} is not a file descriptor`);
          const literal = toLiteral(file.proto);
          checkSame(literal, file.proto, `${args.path}: ${name}`);
          count++;
          return `export const ${name} = /*@__PURE__*/ __fileDescDecoded(${literal}${deps ?? ''});`;
        });
        if (count === 0 || contents.includes('fileDesc("')) {
          throw new Error(`${args.path}: a fileDesc call has a shape predecoded-descriptors does not know`);
        }
        return {
          contents: `import { fileDescDecoded as __fileDescDecoded } from ${JSON.stringify(helper)};\n${contents}`,
          loader: 'js',
        };
      });
    },
  };
}

/** JS source that rebuilds `value`: message objects with their prototypes (shared per type). */
export function toLiteral(value) {
  const protos = new Map();
  const body = emit(value, protos);
  const decls = [...protos].map(([proto, id]) => `${id}=${plain(proto, protos)}`);
  return `(()=>{const m=(p,o)=>Object.assign(Object.create(p),o);${decls.length ? `const ${decls.join(',')};` : ''}return ${body}})()`;
}

function emit(v, protos) {
  if (v === undefined) return 'undefined';
  if (v === null) return 'null';
  switch (typeof v) {
    case 'string':
    case 'boolean':
      return JSON.stringify(v);
    case 'number':
      return Object.is(v, -0) ? '-0' : String(v); // NaN and Infinity are JS tokens too
    case 'bigint':
      return `${v}n`;
    case 'object':
      break;
    default:
      throw new Error(`cannot write a ${typeof v} into a descriptor literal`);
  }
  if (Array.isArray(v)) return `[${v.map((x) => emit(x, protos)).join(',')}]`;
  if (v instanceof Uint8Array) return `new Uint8Array([${v.join(',')}])`;
  const proto = Object.getPrototypeOf(v);
  if (proto === Object.prototype || proto === null) return plain(v, protos);
  if (Object.getPrototypeOf(proto) !== Object.prototype) throw new Error('descriptor objects have one prototype level');
  if (!protos.has(proto)) protos.set(proto, `P${protos.size}`);
  return `m(${protos.get(proto)},${plain(v, protos)})`;
}

function plain(o, protos) {
  return `{${Object.keys(o)
    .map((k) => `${JSON.stringify(k)}:${emit(o[k], protos)}`)
    .join(',')}}`;
}

function checkSame(literal, original, what) {
  const rebuilt = new Function(`return ${literal}`)();
  const same = isDeepStrictEqual(withChains(rebuilt), withChains(original));
  if (!same) throw new Error(`${what}: the predecoded descriptor differs from protobuf-es's own`);
}

/** A comparable copy: own properties plus each object's prototype properties under a key. */
function withChains(v) {
  if (Array.isArray(v)) return v.map(withChains);
  if (v === null || typeof v !== 'object' || v instanceof Uint8Array) return v;
  const own = {};
  for (const k of Object.keys(v)) own[k] = withChains(v[k]);
  const proto = Object.getPrototypeOf(v);
  if (proto !== Object.prototype && proto !== null) own['[[prototype]]'] = withChains(proto);
  return own;
}
