// The e2b SDK as a user runs it against a Wrenn deployed on a domain: a child process whose
// environment holds only E2B_DOMAIN, E2B_API_KEY and NODE_EXTRA_CA_CERTS. The control plane's
// security/e2b-domain-tls.test.ts starts it in a mount namespace whose /etc/resolv.conf names the
// test's resolver. Each scenario prints what it saw as one JSON line; the test asserts on it.
import { Sandbox } from 'e2b';

type Json = Record<string, unknown>;

/** Names each step on stderr, so a scenario that hangs says where (the test prints stderr). */
const step = (name: string) => process.stderr.write(`${new Date().toISOString()} step: ${name}\n`);

const text = async (res: Response) => ({ status: res.status, body: await res.text() });
// A CGI script that answers with the Host header its server got (busybox httpd sets HTTP_HOST).
const HOST_ECHO = '#!/bin/sh\nprintf "content-type: text/plain\\r\\n\\r\\n%s" "$HTTP_HOST"\n';

async function serveHostEcho(sbx: Sandbox, port: number): Promise<void> {
  await sbx.files.write('/tmp/www/cgi-bin/host', HOST_ECHO);
  await sbx.files.write('/tmp/www/index.html', 'page');
  await sbx.commands.run('chmod +x /tmp/www/cgi-bin/host');
  // Without -f httpd puts itself in the background: no command stream stays open in this process.
  await sbx.commands.run(`busybox httpd -p ${port} -h /tmp/www`);
}

/** Fetches until the server answers something other than the proxy's "port not open" (502). */
async function fetchServer(url: string, init: RequestInit = {}): Promise<{ status: number; body: string }> {
  let last = { status: 0, body: '' };
  for (let i = 0; i < 50; i++) {
    // Each attempt on stderr: a hang names the request (and whether the server answered it).
    step(`fetch ${url} (attempt ${i + 1})`);
    last = await text(await fetch(url, init));
    if (last.status !== 502) return last;
    await new Promise((r) => setTimeout(r, 100));
  }
  return last;
}

const scenarios: Record<string, () => Promise<Json>> = {
  async lifecycle() {
    const env = {
      domain: process.env.E2B_DOMAIN,
      apiUrl: process.env.E2B_API_URL ?? null,
      sandboxUrl: process.env.E2B_SANDBOX_URL ?? null,
    };
    step('create');
    const sbx = await Sandbox.create('minimal', { secure: true, timeoutMs: 300_000 });
    try {
      step(`run in ${sbx.sandboxId}`);
      const echo = await sbx.commands.run('echo hi from $(hostname)');
      step('files');
      await sbx.files.write('/home/user/hello.txt', 'hello over tls');
      const read = await sbx.files.read('/home/user/hello.txt');
      step('signed URLs');
      const download = await sbx.downloadUrl('hello.txt');
      const valid = await text(await fetch(download));
      const timed = await text(await fetch(await sbx.downloadUrl('hello.txt', { useSignatureExpiration: 60 })));
      const expired = await text(await fetch(await sbx.downloadUrl('hello.txt', { useSignatureExpiration: -60 })));
      const forged = new URL(download);
      forged.searchParams.set('signature', `v1_${'A'.repeat(43)}`);
      const wrong = await text(await fetch(forged));
      const upload = await sbx.uploadUrl('up.txt');
      const form = new FormData();
      form.append('file', 'uploaded over tls');
      const uploaded = await text(await fetch(upload, { method: 'POST', body: form }));
      const upRead = await sbx.files.read('/home/user/up.txt');

      step('serve');
      await serveHostEcho(sbx, 8080);
      step('fetch getHost');
      const host = sbx.getHost(8080);
      const page = await fetchServer(`https://${host}/index.html`);
      const seenHost = await fetchServer(`https://${host}/cgi-bin/host`);

      step('pause');
      await sbx.pause();
      step('connect');
      const pausedInfo = await Sandbox.getInfo(sbx.sandboxId);
      const resumed = await Sandbox.connect(sbx.sandboxId);
      const afterResume = await resumed.files.read('/home/user/hello.txt');
      const running = await resumed.isRunning();
      step('kill');
      await resumed.kill();
      const gone = await Sandbox.getInfo(sbx.sandboxId).then(
        () => 'still there',
        (e: Error) => e.constructor.name,
      );
      return {
        env,
        sandboxDomain: sbx.sandboxDomain,
        echo: echo.stdout.trim(),
        read,
        download,
        valid,
        timed,
        expired,
        wrong,
        upload,
        uploaded: uploaded.status,
        upRead,
        host,
        page,
        seenHost,
        pausedState: pausedInfo.state,
        afterResume,
        running,
        gone,
      };
    } finally {
      await sbx.kill().catch(() => undefined);
    }
  },
};

/**
 * allowPublicTraffic: false and maskRequestHost: the token guards the capsule's ports (not envd's),
 * also against waking it by auto-resume; the capsule's server sees the masked host.
 */
scenarios.private = async () => {
  step('create private');
  const sbx = await Sandbox.create('minimal', {
    timeoutMs: 300_000,
    lifecycle: { onTimeout: 'pause', autoResume: true },
    network: { allowPublicTraffic: false, maskRequestHost: 'masked.example:${PORT}' },
  });
  try {
    const token = sbx.trafficAccessToken ?? '';
    step(`serve in ${sbx.sandboxId}`);
    await serveHostEcho(sbx, 8080);
    step('fetch with and without token');
    const url = `https://${sbx.getHost(8080)}`;
    const withToken = { headers: { 'e2b-traffic-access-token': token } };
    const allowed = await fetchServer(`${url}/index.html`, withToken);
    const none = await text(await fetch(`${url}/index.html`));
    const wrong = await text(
      await fetch(`${url}/index.html`, { headers: { 'e2b-traffic-access-token': `${token}x` } }),
    );
    const empty = await text(await fetch(`${url}/index.html`, { headers: { 'e2b-traffic-access-token': '' } }));
    const seenHost = await text(await fetch(`${url}/cgi-bin/host`, withToken));
    // envd's port keeps its own rules: the SDK works without the traffic token.
    step('run');
    const envd = (await sbx.commands.run('echo envd ok')).stdout.trim();
    const info = await Sandbox.getInfo(sbx.sandboxId);
    step('pause');
    await sbx.pause();
    step('wake by fetch');
    const pausedNoToken = await text(await fetch(`${url}/index.html`));
    const stillPaused = (await Sandbox.getInfo(sbx.sandboxId)).state;
    const wokenWithToken = await fetchServer(`${url}/index.html`, withToken);
    const afterWake = (await Sandbox.getInfo(sbx.sandboxId)).state;
    // A public neighbour next to it is reachable without any token.
    step('public neighbour');
    const pub = await Sandbox.create('minimal', { timeoutMs: 300_000 });
    await serveHostEcho(pub, 8080);
    const neighbour = await fetchServer(`https://${pub.getHost(8080)}/cgi-bin/host`);
    await pub.kill();
    return {
      token,
      tokenLength: token.length,
      allowed,
      none,
      wrong,
      empty,
      seenHost,
      envd,
      network: info.network ?? null,
      pausedNoToken,
      stillPaused,
      wokenWithToken,
      afterWake,
      neighbour,
      neighbourHost: pub.getHost(8080),
    };
  } finally {
    await sbx.kill().catch(() => undefined);
  }
};

/** A sandbox with a server on 8080 left running for the test's own probes (it kills it). */
scenarios.serve = async () => {
  const sbx = await Sandbox.create('minimal', { timeoutMs: 300_000 });
  await serveHostEcho(sbx, 8080);
  const ready = await fetchServer(`https://${sbx.getHost(8080)}/index.html`);
  return { id: sbx.sandboxId, host: sbx.getHost(8080), ready };
};

const name = process.argv[2] ?? '';
const run = scenarios[name];
if (!run) {
  process.stderr.write(`unknown scenario "${name}"; one of ${Object.keys(scenarios).join(', ')}\n`);
  process.exit(2);
}
run().then(
  (out) => process.stdout.write(`${JSON.stringify(out)}\n`),
  (err: unknown) => {
    process.stdout.write(
      `${JSON.stringify({ error: err instanceof Error ? `${err.name}: ${err.message}` : String(err) })}\n`,
    );
    process.exitCode = 1;
  },
);
