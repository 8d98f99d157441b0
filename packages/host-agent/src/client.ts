// What a control plane needs to reach host agents, without loading an agent: the Connect client
// and the secret header its calls carry, the HTTP forwarder for proxied capsule traffic and the
// E2B-shaped answers when it fails, and the request rules it checks before asking an agent
// (runtime names, egress allow-lists).

export { type AgentClient, createAgentClient } from './auth/client.js';
export {
  AGENT_CERT_MISMATCH,
  agentTlsCode,
  agentTlsFailure,
  certificateFingerprint,
  type PinnedTlsOptions,
  pinnedTls,
} from './auth/pinned-tls.js';
export { AGENT_SECRET_HEADER } from './auth/request-auth.js';
export { MAX_ALLOW_OUT, parseCidr } from './network/egress-policy.js';
export {
  createProxyAgent,
  createTlsProxyAgent,
  forwardHttp,
  forwardUpgrade,
  HOP_BY_HOP,
  type ProxyTarget,
  RESPONSE_HOP_BY_HOP,
  rewriteLocation,
} from './proxy/forward.js';
export {
  type GuestFailure,
  guestErrorBody,
  guestErrorResponse,
  portNotOpen,
  proxyFailure,
  sandboxNotFound,
  sendGuestError,
} from './proxy/guest-errors.js';
export { RUNTIME_NAMES } from './runtimes/runtime.js';
