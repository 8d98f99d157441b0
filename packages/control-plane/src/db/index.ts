// The control plane's SQL layer: open/migrate, row types and typed repository functions.
export * from './codec.js';
export type { SqlDialect } from './dialect.js';
export * from './errors.js';
export { migrationNames } from './migrate.js';
export { type OpenDatabaseOptions, openDatabase, SQLITE_FILE_NAME, type WrennDatabase } from './open.js';
export * from './pagination.js';
export * from './repositories/audit-events.js';
export * from './repositories/capsules.js';
export * from './repositories/hosts.js';
export * from './repositories/teams.js';
export * from './repositories/template-builds.js';
export * from './repositories/template-tags.js';
export * from './repositories/templates.js';
export type { Database } from './schema.js';
