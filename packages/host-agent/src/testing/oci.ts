// Test support for container images, shared by the agent's and the control plane's tests and the
// benchmarks (`@wrenn/host-agent/testing/oci`): Debian's docker-registry on a loopback port and
// images built on this machine. Not used by the agent itself.
export * from './oci-gate.js';
export * from './oci-images.js';
export * from './oci-registry.js';
