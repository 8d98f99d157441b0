// The e2b SDK with the Debian `base` template: a Python web server started inside the sandbox is
// reached through the proxy at the address getHost() gives, as E2B users do. `base` comes from the
// template cache shared with the host-agent tests (built with debootstrap on first use).

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Sandbox } from 'e2b';
import { getViaHost, type LiveSystem, SHARED_IMAGES, startLive, waitFor } from './e2b-live.js';

describe('e2b SDK with the base template', () => {
  let sys: LiveSystem;
  let sbx: Sandbox | undefined;
  before(async () => {
    sys = await startLive({ db: 'sqlite', slot: 9, imagesDir: SHARED_IMAGES });
  });
  after(async () => {
    await sbx?.kill().catch(() => undefined);
    await sys?.close();
  });

  it('serves python3 -m http.server through the proxy', async () => {
    sbx = await Sandbox.create('base', { ...sys.sdk(), timeoutMs: 600_000 });
    const py = await sbx.commands.run('python3 --version');
    assert.match(py.stdout, /^Python 3\./);
    await sbx.files.write('/home/user/site/hello.txt', 'hello from python');
    await sbx.commands.run('cd /home/user/site && python3 -m http.server 8000', { background: true });
    const host = sbx.getHost(8000);
    const r = await waitFor(
      'the python server to answer through the proxy',
      async () => {
        const res = await getViaHost(sys.url, host, '/hello.txt');
        return res.status === 200 ? res : undefined;
      },
      60_000,
    );
    assert.equal(r.body, 'hello from python');
    // A directory listing is HTML made inside the sandbox, proving the whole round trip.
    const listing = await getViaHost(sys.url, host, '/');
    assert.equal(listing.status, 200);
    assert.match(listing.body, /hello\.txt/);
  });
});
