// API-key authentication, the first admin key, and host registration tokens.
export * from './admin.js';
export * from './api-keys.js';
export { sha256Hex } from './hash.js';
export * from './host-tokens.js';
