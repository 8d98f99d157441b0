// Where a volume may be mounted in a capsule of a given template: the path is looked up in the
// template's layers as overlayfs would (topmost layer first), and a symlink or a non-directory on
// the way is a caller error (400) named before the capsule starts. nsinit.c still walks the path
// without following symlinks when it mounts; this only turns the refusal into a clear answer.
import { lstatSync } from 'node:fs';
import { join } from 'node:path';
import { InvalidArgumentError } from '@wrenn/protocol';

/** `layers`: the template's layer dirs, topmost first. */
export function checkVolumePathsInLayers(layers: readonly string[], paths: readonly string[]): void {
  for (const path of paths) {
    const parts = path.split('/').filter(Boolean);
    for (let i = 1; i <= parts.length; i++) {
      const prefix = parts.slice(0, i).join('/');
      const found = topmost(layers, prefix);
      if (found === 'absent') break; // made by the runtime from here on
      if (found === 'symlink')
        throw new InvalidArgumentError(
          `volume mount path ${path}: /${prefix} is a symlink in the template; mount the volume on a real directory`,
        );
      if (found === 'other')
        throw new InvalidArgumentError(
          `volume mount path ${path}: /${prefix} is a file in the template, not a directory`,
        );
    }
  }
}

function topmost(layers: readonly string[], rel: string): 'dir' | 'symlink' | 'other' | 'absent' {
  for (const layer of layers) {
    let st: ReturnType<typeof lstatSync>;
    try {
      st = lstatSync(join(layer, rel));
    } catch {
      continue;
    }
    if (st.isDirectory()) return 'dir';
    if (st.isSymbolicLink()) return 'symlink';
    // An overlay whiteout (a 0/0 character device) hides what lower layers have.
    if (st.isCharacterDevice() && st.rdev === 0) return 'absent';
    return 'other';
  }
  return 'absent';
}
