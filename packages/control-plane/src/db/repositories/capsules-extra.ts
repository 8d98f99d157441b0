// Compatibility names used by the API services; the queries live in capsules.ts.
import type { Kysely } from 'kysely';
import type { Page } from '../pagination.js';
import type { Database } from '../schema.js';
import { type Capsule, type CapsuleFilter, listCapsules } from './capsules.js';

export { capsuleIdsUsingTemplate } from './capsules.js';

/** listCapsules's filter already has `template`; kept as an alias. */
export type CapsuleListFilter = CapsuleFilter;

/** Same as listCapsules (newest first, keyset-paginated, with the template filter). */
export function listCapsulesWithTemplate(db: Kysely<Database>, filter: CapsuleListFilter = {}): Promise<Page<Capsule>> {
  return listCapsules(db, filter);
}
