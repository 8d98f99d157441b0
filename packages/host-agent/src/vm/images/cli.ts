// `node packages/host-agent/dist/src/vm/images/cli.js [--data-dir DIR] [--force] [template...]`:
// builds the guest kernel and the VM root disks of the given templates (default: minimal).
import { buildVmImages } from './index.js';

const args = process.argv.slice(2);
let dataDir = process.env.WRENN_DIR ?? '/var/lib/wrenn';
let force = false;
const templates: string[] = [];
for (let i = 0; i < args.length; i++) {
  const a = args[i] as string;
  if (a === '--data-dir') dataDir = args[++i] ?? dataDir;
  else if (a === '--force') force = true;
  else templates.push(a);
}
for (const template of templates.length ? templates : ['minimal']) {
  const r = await buildVmImages({ dataDir, template, force });
  console.log(JSON.stringify({ template, kernel: r.kernel, rootfs: r.rootfs }));
}
