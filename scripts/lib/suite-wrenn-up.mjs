// `wrenn up` started for a run of one of E2B's own test suites (scripts/e2b-suite.mjs,
// scripts/e2b-code-interpreter-suite.mjs) the way a new user would start it: the CLI with a fresh
// data dir, an address pool, ports and cgroup parent of its own; in domain mode on a loopback
// address with TLS and a dnsmasq resolver for the test domain. stopWrenn destroys every capsule
// left, stops it and removes the data dir.
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Agent, fetch } from 'undici';
import { freePort } from './free-port.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const SHARED_IMAGES = process.env.WRENN_TEST_IMAGES ?? '/var/cache/wrenn-test-images';

/**
 * Copies template `t` from the test cache into `images`: its manifest and the layers it names now
 * (a rebuilt base template's layer is <name>.v<version>/, and its own dir may still hold an older
 * build's rootfs/ for what was made on it: not copied). Nothing when the cache has no such template.
 */
function copyTemplate(t, images) {
  const from = join(SHARED_IMAGES, t);
  if (!existsSync(join(from, 'manifest.json'))) return;
  const { layers } = JSON.parse(readFileSync(join(from, 'manifest.json'), 'utf8'));
  const cp = (src, dst) => {
    if (existsSync(dst)) return;
    mkdirSync(dirname(dst), { recursive: true });
    const r = spawnSync('cp', ['-a', '--reflink=auto', src, dst], { stdio: 'inherit' });
    if (r.status !== 0) throw new Error(`could not copy ${src} (template ${t}) from ${SHARED_IMAGES}`);
  };
  for (const id of layers) {
    if (!/^[a-z0-9][a-z0-9._-]*$/.test(id) || id.includes('..')) throw new Error(`${from}: bad layer id ${id}`);
    cp(join(SHARED_IMAGES, id, 'rootfs'), join(images, id, 'rootfs'));
    if (id !== t && existsSync(join(SHARED_IMAGES, id, 'layer.json')))
      cp(join(SHARED_IMAGES, id, 'layer.json'), join(images, id, 'layer.json'));
  }
  cp(join(from, 'manifest.json'), join(images, t, 'manifest.json'));
}

/**
 * `wrenn up` (the CLI) with a fresh data dir, its own address pool and ports. `o.templates`: the
 * built-in templates copied from the machine's test cache (default minimal and base) unless
 * `o.freshTemplates`; `o.domainMode`, `o.mirror` as in e2b-suite.mjs; `log` gets progress lines.
 */
export async function startWrenn(o, log) {
  if (existsSync('/sys/fs/cgroup/memory/wrenn') || existsSync('/sys/fs/cgroup/wrenn'))
    throw new Error('a Wrenn agent already runs on this machine (cgroup parent "wrenn"): not starting a second');
  const dataDir = mkdtempSync(join(tmpdir(), 'wrenn-e2b-suite-'));
  // A new user's first `base` capsule builds the template (minutes on 2 cores); reuse the
  // machine's test template cache unless asked not to.
  if (!o.freshTemplates) for (const t of o.templates ?? ['minimal', 'base']) copyTemplate(t, join(dataDir, 'images'));
  const apiKey = `wrn_${randomBytes(16).toString('hex')}`;
  const listen = o.domainMode ? `${DOMAIN_MODE.address}:443` : `127.0.0.1:${await freePort()}`;
  const up = spawn(process.execPath, [join(root, 'packages/cli/bin/wrenn.js'), 'up'], {
    env: {
      ...process.env,
      WRENN_DIR: dataDir,
      WRENN_LISTEN: listen,
      WRENN_API_KEY: apiKey,
      // Away from the default pool, the smoke script's and the test suites' slots (10.238-255).
      WRENN_NET_POOL: '10.237.0.0/22',
      WRENN_METADATA_PORT: '31267',
      // The egress proxy's two ports (HTTP, TLS): not the default (metadata port + 1 and + 2), where
      // the smoke script's metadata port is; clear of the test slots' 31270-31331.
      WRENN_EGRESS_PROXY_PORT: '31340',
      WRENN_LOG_LEVEL: process.env.WRENN_LOG_LEVEL ?? 'warn',
      ...(o.domainMode ? { WRENN_TLS: 'self-signed', WRENN_DOMAIN: DOMAIN_MODE.domain } : {}),
      ...(o.mirror ? { WRENN_REGISTRY_MIRROR: o.mirror } : {}),
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const upLogFile = join(tmpdir(), `wrenn-e2b-suite-up-${process.pid}.log`);
  let upLog = '';
  up.stderr.on('data', (d) => {
    upLog += d;
    writeFileSync(upLogFile, d, { flag: 'a' });
  });
  const started = new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error('wrenn up did not start within 600 s')), 600_000);
    const check = () => {
      if (upLog.includes('Wrenn is running at')) {
        clearTimeout(timer);
        ok();
      }
    };
    up.stderr.on('data', check);
    up.once('exit', (code, signal) => {
      clearTimeout(timer);
      fail(new Error(`wrenn up exited (${code ?? signal}) before it was running:\n${upLog}`));
    });
  });
  try {
    await started;
  } catch (err) {
    // Nothing ran in it yet: stop it (when still starting) and remove the data dir.
    if (up.exitCode === null && up.signalCode === null) {
      up.kill('SIGTERM');
      await once(up, 'exit');
    }
    rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
  const scheme = o.domainMode ? 'https' : 'http';
  log(`wrenn up is running at ${scheme}://${listen} (data ${dataDir}, log ${upLogFile})`);
  // The SDK gets the key's e2b_ form, as a user would: its own key check then passes as it is.
  const { e2bKeyOf } = await import(join(root, 'packages/control-plane/dist/src/index.js'));
  const caFile = o.domainMode ? join(dataDir, 'tls', 'ca.crt') : undefined;
  // Over TLS this script's own calls (the cleanup) trust the deployment's CA.
  // Over TLS it is called by its name, api.<domain> (what its certificate names), dialled at its
  // address without the test resolver.
  const dispatcher = caFile
    ? new Agent({
        connect: {
          ca: readFileSync(caFile),
          lookup: (_name, opts, cb) =>
            opts?.all ? cb(null, [{ address: DOMAIN_MODE.address, family: 4 }]) : cb(null, DOMAIN_MODE.address, 4),
        },
      })
    : undefined;
  const url = o.domainMode ? `https://api.${DOMAIN_MODE.domain}` : `http://${listen}`;
  return { up, url, apiKey, e2bKey: e2bKeyOf(apiKey), dataDir, upLogFile, caFile, dispatcher };
}

// Not security/e2b-domain-tls's 127.88.0.x, so a suite run and that test can run at once.
export const DOMAIN_MODE = { domain: 'wrenn.test', address: '127.89.0.1', resolver: '127.89.0.53' };

/** dnsmasq answering *.wrenn.test with the listener's address, and a resolv.conf naming it. */
export function startResolver() {
  const dir = mkdtempSync(join(tmpdir(), 'wrenn-e2b-suite-dns-'));
  const resolvConf = join(dir, 'resolv.conf');
  writeFileSync(resolvConf, `nameserver ${DOMAIN_MODE.resolver}\noptions timeout:1 attempts:2\n`);
  const dns = spawn(
    'dnsmasq',
    [
      '--keep-in-foreground',
      '--conf-file=/dev/null',
      '--no-resolv',
      '--no-hosts',
      `--listen-address=${DOMAIN_MODE.resolver}`,
      '--bind-interfaces',
      '--port=53',
      `--address=/${DOMAIN_MODE.domain}/${DOMAIN_MODE.address}`,
      '--pid-file=',
      '--user=nobody',
    ],
    { stdio: 'ignore' },
  );
  return {
    resolvConf,
    stop() {
      dns.kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Destroys every capsule left (failed tests leave some), stops `wrenn up`, removes its data dir. */
export async function stopWrenn(w, log) {
  const headers = { 'X-API-Key': w.apiKey };
  try {
    let cursor;
    const ids = [];
    do {
      const q = cursor ? `?cursor=${encodeURIComponent(cursor)}` : '';
      const page = await (await fetch(`${w.url}/v1/capsules${q}`, { headers, dispatcher: w.dispatcher })).json();
      for (const c of page.capsules ?? []) if (c.state !== 'stopped') ids.push(c.id);
      cursor = page.next_cursor;
    } while (cursor);
    for (const id of ids)
      await fetch(`${w.url}/v1/capsules/${id}`, { method: 'DELETE', headers, dispatcher: w.dispatcher }).catch(
        () => {},
      );
    if (ids.length) log(`destroyed ${ids.length} capsules left by the suite`);
  } catch (err) {
    log(`could not list/destroy leftover capsules: ${err}`);
  }
  if (w.up.exitCode === null && w.up.signalCode === null) {
    const exited = once(w.up, 'exit');
    w.up.kill('SIGTERM');
    const timer = setTimeout(() => w.up.kill('SIGKILL'), 60_000);
    await exited;
    clearTimeout(timer);
  }
  rmSync(w.dataDir, { recursive: true, force: true });
  if (existsSync('/sys/fs/cgroup/memory/wrenn')) log('WARNING: wrenn up left its cgroup parent behind');
}

/**
 * Re-runs this script under `flock` on one lock file when it is not holding it yet: two suite runs
 * at once would share `wrenn up`'s fixed ports, address pool and cgroup parent, so the second waits.
 * Returns true when the caller is the holder (go on), false when it ran the held copy (exit with it).
 */
export function holdSuiteLock(log) {
  if (process.env.WRENN_E2B_SUITE_LOCKED === '1') return true;
  const lock = '/tmp/wrenn-e2b-suite.lock';
  log(`waiting for ${lock} (one E2B suite run at a time)`);
  const r = spawnSync('flock', [lock, process.execPath, ...process.argv.slice(1)], {
    stdio: 'inherit',
    env: { ...process.env, WRENN_E2B_SUITE_LOCKED: '1' },
  });
  process.exitCode = r.status ?? 1;
  return false;
}
