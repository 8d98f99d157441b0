// @wrenn/host-agent: run a host agent (its layers, the agent process, its CLI and its registration
// with a control plane). What a control plane needs to reach agents is the lighter "./client".

export { type AgentOptions, type RunningAgent, startAgent } from './agent.js';
export { AGENT_TLS_DIR, AgentTlsError, type AgentTlsSource, loadAgentTls } from './auth/agent-tls.js';
export { type AgentCliHooks, parseAgentTls, parseListen, parseWarmPool, runAgentFromCli } from './cli.js';
export { type LocalAgent, type LocalAgentOptions, startLocalAgent } from './local-agent.js';
export {
  createLocalLayers,
  type LocalLayerOptions,
  type LocalLayers,
  namePrefixFromEnv,
  networkProvider,
  templateProvider,
} from './local-providers.js';
export { loadEgressCa, NetworkManager, type NetworkOptions, startMetadataHttpServer } from './network/index.js';
export {
  type ImageDefaults,
  type ImageReference,
  ociCacheDir,
  type PulledImage,
  type PullOptions,
  type PullProgress,
  parseImageReference,
  pullImage,
  type RegistryCredentials,
} from './oci/index.js';
export {
  type RegisterWithControlPlaneOptions,
  type Registration,
  RegistrationError,
  registerWithControlPlane,
} from './registration/register-client.js';
export { TemplateStore } from './rootfs/index.js';
export { NamespaceRuntime, removeCgroupParentIfEmpty } from './runtimes/namespace/index.js';
export type { CapsuleRuntime, RuntimeName } from './runtimes/runtime.js';
