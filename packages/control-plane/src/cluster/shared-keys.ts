// Secrets every control-plane replica must agree on (e.g. the HMAC key of template upload links,
// templates/upload-links.ts), kept in the database's cluster_keys. The first replica to need a key
// creates it with an insert that does nothing when the row already exists, then every replica
// reads the row back: two replicas racing both end up with the winner's key. Cached per process
// (a key never changes once made).
import { randomBytes } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.js';

const cache = new WeakMap<Kysely<Database>, Map<string, Promise<Buffer>>>();

async function load(db: Kysely<Database>, name: string): Promise<Buffer> {
  await db
    .insertInto('cluster_keys')
    .values({ name, value: randomBytes(32).toString('base64url'), created_at: Date.now() })
    .onConflict((oc) => oc.column('name').doNothing())
    .execute();
  const row = await db.selectFrom('cluster_keys').select('value').where('name', '=', name).executeTakeFirstOrThrow();
  return Buffer.from(row.value, 'base64url');
}

/** The shared 32-byte key `name`, created on first use by whichever replica comes first. */
export function sharedKey(db: Kysely<Database>, name: string): Promise<Buffer> {
  let keys = cache.get(db);
  if (!keys) cache.set(db, (keys = new Map()));
  let key = keys.get(name);
  if (!key) {
    key = load(db, name);
    keys.set(name, key);
    // A failed read (database down) is retried by the next caller.
    key.catch(() => keys.delete(name));
  }
  return key;
}
