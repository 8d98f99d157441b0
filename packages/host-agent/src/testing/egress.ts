// Test fixtures other packages' suites share (`@wrenn/host-agent/testing/egress`): processes in network
// namespaces and the egress tests' own "internet". Never loaded by the agent itself.
export * from './egress-internet.js';
export * from './netns.js';
