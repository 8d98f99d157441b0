// Asks a host agent who it is (GetHostInfo) with a deadline: used at registration, so a host whose
// address the control plane cannot reach is refused at once instead of failing later, and by the
// heartbeat monitor.
import { createAgentClient } from '@wrenn/host-agent/client';
import { messageOf } from '@wrenn/protocol';
import type { GetHostInfoResponse, WarmPool } from '@wrenn/protocol/gen/hostagent/v1/hostagent_pb';
import { withDomainErrors } from '../agents/domain-errors-client.js';
import type { AgentEndpoint, AgentPool } from '../agents/pool.js';
import type { WarmPoolReport } from '../db/repositories/hosts.js';

export interface HostInfo {
  agentHostId: string;
  runtimes: string[];
  cpuCount: number;
  memoryMb: number;
  capsulesRunning: number;
  vcpusAllocated: number;
  memoryMbAllocated: number;
  version: string;
  /** Capacity (0 / '' from an agent that does not report it): capsules held, more it can take, why none. */
  capsulesHeld: number;
  capsuleRoom: number;
  full: string;
  /** Its warm pools (empty from an agent without any, or one too old to report them). */
  warmPools: WarmPoolReport[];
}

/** The message's fields without protobuf-es's own ($typeName, $unknown). */
export const toWarmPoolReport = ({ $typeName: _t, $unknown: _u, ...fields }: WarmPool): WarmPoolReport => fields;

export const toHostInfo = (r: GetHostInfoResponse): HostInfo => ({
  agentHostId: r.hostId,
  runtimes: [...r.runtimes],
  cpuCount: r.cpuCount,
  memoryMb: Number(r.memoryMb),
  capsulesRunning: r.capsulesRunning,
  vcpusAllocated: r.vcpusAllocated,
  memoryMbAllocated: Number(r.memoryMbAllocated),
  version: r.version,
  capsulesHeld: r.capsulesHeld,
  capsuleRoom: r.capsuleRoom,
  full: r.full,
  warmPools: r.warmPools.map(toWarmPoolReport),
});

export async function probeHost(agents: AgentPool, host: AgentEndpoint, timeoutMs: number): Promise<HostInfo> {
  const res = await agents.client(host).getHostInfo({}, { timeoutMs });
  return toHostInfo(res);
}

/**
 * One call over a throw-away HTTP/1.1 transport: nothing lingers for an address that may be wrong.
 * With the agent's secret, so a wrong secret fails here (unauthenticated) rather than on every call
 * later; and, for an https:// agent, pinned to `tlsCert`, so the registration is refused unless the
 * agent at that address serves the certificate it sent (before the secret goes out).
 */
export async function probeAddress(
  address: string,
  secret: string,
  timeoutMs: number,
  tlsCert?: string | null,
): Promise<HostInfo> {
  const client = withDomainErrors(
    createAgentClient(address, secret, { httpVersion: '1.1', useBinaryFormat: true }, tlsCert),
  );
  return toHostInfo(await client.getHostInfo({}, { timeoutMs }));
}

export const describeProbeError = messageOf;
