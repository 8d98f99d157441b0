// Test helpers: a real envd on a port, and Connect clients for it.
import { type Client, createClient } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-node';
import { Filesystem } from '@wrenn/protocol/gen/envd/filesystem_pb';
import { Process } from '@wrenn/protocol/gen/envd/process_pb';
import { type EnvdServer, startEnvd } from '../src/server.js';
import type { EnvdOptions } from '../src/state.js';

export interface TestEnvd {
  server: EnvdServer;
  baseUrl: string;
  process: Client<typeof Process>;
  filesystem: Client<typeof Filesystem>;
  close(): Promise<void>;
}

/** Starts envd on 127.0.0.1 (port 0 = any free port) with clients over HTTP/1.1 or h2c. */
export async function startTestEnvd(
  opts: Partial<EnvdOptions> & { http2?: boolean; binary?: boolean } = {},
): Promise<TestEnvd> {
  const server = await startEnvd({ port: 0, host: '127.0.0.1', ...opts });
  const baseUrl = `http://127.0.0.1:${server.port}`;
  const transport = createConnectTransport({
    baseUrl,
    httpVersion: opts.http2 ? '2' : '1.1',
    useBinaryFormat: opts.binary ?? false,
  });
  return {
    server,
    baseUrl,
    process: createClient(Process, transport),
    filesystem: createClient(Filesystem, transport),
    close: () => server.close(),
  };
}

/** Basic auth header the e2b SDK sends to pick a user. */
export function userHeader(user: string): Record<string, string> {
  return { authorization: `Basic ${Buffer.from(`${user}:`).toString('base64')}` };
}
