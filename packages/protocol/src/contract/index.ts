// The capsule contract without its schemas: numbers, word lists and rules, free of dependencies
// so envd's bundle and browsers can take it alone (`@wrenn/protocol/contract`).

export * from './camel.js';
export * from './file-signature.js';
export * from './fork.js';
export * from './images.js';
export * from './limits.js';
export * from './network.js';
export * from './public-traffic.js';
export * from './rules.js';
export * from './states.js';
export * from './template-build.js';
export * from './volumes.js';
