// A host agent on this machine with its local layers (runtimes, network, templates): what
// `wrenn agent` runs, and the agent half of `wrenn up`. Its start is logged once, with the runtimes
// offered and why, and the capacity the host reports.
import type pino from 'pino';
import { type RunningAgent, startAgent } from './agent.js';
import type { AgentTlsSource } from './auth/agent-tls.js';
import { describeCapacity } from './capacity/capacity.js';
import { createLocalLayers, type LocalLayerOptions, type LocalLayers } from './local-providers.js';
import { agentNetWarmPool } from './network/index.js';

export interface LocalAgentOptions extends Omit<LocalLayerOptions, 'log'> {
  dataDir: string;
  listen: { host: string; port: number };
  /** Ready capsules kept per template (default none). */
  warmPool?: Record<string, number>;
  /** Serve TLS (remote agents; see agent.ts). Default plain. */
  tls?: AgentTlsSource;
  log: pino.Logger;
}

export interface LocalAgent {
  agent: RunningAgent;
  layers: LocalLayers;
  /** Stops the agent, then its layers (capsules stay, for the next start to take back). */
  close(): Promise<void>;
}

export async function startLocalAgent(o: LocalAgentOptions): Promise<LocalAgent> {
  const { dataDir, listen, warmPool, tls, log, ...layerOptions } = o;
  const layers = await createLocalLayers(dataDir, {
    ...layerOptions,
    network: { warmPool: agentNetWarmPool(), ...(o.network ?? {}) },
    log,
  });
  let agent: RunningAgent;
  try {
    agent = await startAgent({
      ...layers,
      dataDir,
      listen,
      ...(warmPool ? { warmPool } : {}),
      ...(tls ? { tls } : {}),
      log: (level, msg, data) => log[level](data ?? {}, msg),
    });
  } catch (err) {
    await layers.close().catch(() => undefined);
    throw err;
  }
  log.info(
    {
      url: agent.url,
      hostId: agent.hostId,
      dataDir,
      secret: agent.secretSource.source === 'env' ? 'WRENN_AGENT_SECRET' : agent.secretSource.file,
      ...(agent.tls ? { tlsCertSha256: agent.tls.fingerprint256 } : {}),
      runtimes: [...layers.runtimes.keys()],
      defaultRuntime: layers.defaultRuntime,
      why: layers.runtimeReasons,
      capacity: describeCapacity(agent.manager.capacity(0, true)),
    },
    'host agent listening',
  );
  return {
    agent,
    layers,
    async close() {
      await agent.close();
      await layers.close();
    },
  };
}
