// Turns a downloaded layer blob into a tar stream: gzip with Node's zlib, zstd with Debian's
// `zstd` binary (Node 20's zlib has no zstd), uncompressed as is.
import { spawn } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { PassThrough, type Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import type { LayerCompression } from './image-manifest.js';

/** A readable tar stream of the blob at `file`; it errors if the decompressor fails. */
export function decompressedLayer(file: string, compression: LayerCompression): Readable {
  const raw = createReadStream(file);
  if (compression === 'none') return raw;
  if (compression === 'gzip') {
    const gunzip = createGunzip();
    raw.on('error', (err) => gunzip.destroy(err));
    return raw.pipe(gunzip);
  }
  const out = new PassThrough();
  const child = spawn('zstd', ['-d', '-c', '-q', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  raw.destroy();
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    if (stderr.length < 2000) stderr += d.toString();
  });
  child.stdout.pipe(out, { end: false });
  child.on('error', (err) => out.destroy(new Error(`zstd could not run (install Debian's zstd): ${err.message}`)));
  child.on('close', (code) => {
    if (code === 0) out.end();
    else out.destroy(new Error(`zstd failed (${code}): ${stderr.trim()}`));
  });
  out.on('close', () => {
    if (child.exitCode === null) child.kill();
  });
  return out;
}
