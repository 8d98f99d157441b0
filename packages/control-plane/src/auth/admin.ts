// The first API key: on first start Wrenn creates an admin team and key and writes the key to
// <dataDir>/admin-api-key (mode 0600) so the user can read it; later starts keep using it.
// WRENN_API_KEY (envKey), when set, is the admin key instead and is never written to disk.
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Kysely } from 'kysely';
import { type Database, DbError, getTeam, type Team } from '../db/index.js';
import { assertApiKeyFormat, createApiKey, generateApiKey, isApiKeyFormat } from './api-keys.js';
import { sha256Hex } from './hash.js';

export const ADMIN_TEAM_ID = 'team-admin';
export const ADMIN_TEAM_NAME = 'admin';
export const ADMIN_KEY_FILE = 'admin-api-key';

export interface AdminKey {
  apiKey: string;
  team: Team;
  /** env: WRENN_API_KEY; file: kept from an earlier start; generated: created now (and written to `file`). */
  source: 'env' | 'file' | 'generated';
  /** Path of the key file (written only when source is 'generated'). */
  file: string;
}

export async function ensureAdmin(opts: {
  db: Kysely<Database>;
  dataDir: string;
  envKey?: string | undefined;
}): Promise<AdminKey> {
  const { db, dataDir } = opts;
  const file = join(dataDir, ADMIN_KEY_FILE);
  const team = await ensureAdminTeam(db);
  const envKey = opts.envKey?.trim();

  if (envKey) {
    assertApiKeyFormat(envKey, 'WRENN_API_KEY');
    await adoptKey(db, envKey, 'admin (WRENN_API_KEY)', 'WRENN_API_KEY');
    return { apiKey: envKey, team, source: 'env', file };
  }

  if (existsSync(file)) {
    const saved = readFileSync(file, 'utf8').trim();
    if (!isApiKeyFormat(saved)) {
      throw new DbError(
        'invalid_argument',
        `${file} does not hold a valid API key ('wrn_' + 32 of a-z0-9); delete the file to have a new admin key created`,
      );
    }
    // The owner alone may read it, even if someone loosened the mode.
    if ((statSync(file).mode & 0o077) !== 0) chmodSync(file, 0o600);
    const state = await keyState(db, saved);
    if (state === 'admin' || state === 'unknown') {
      // Unknown: the database was replaced (e.g. moved to PostgreSQL); the saved key stays valid.
      if (state === 'unknown') await createApiKey(db, { teamId: ADMIN_TEAM_ID, name: 'admin', key: saved });
      return { apiKey: saved, team, source: 'file', file };
    }
    // Revoked (or taken by another team): fall through and replace it with a new key.
  }

  const { key } = await createApiKey(db, { teamId: ADMIN_TEAM_ID, name: 'admin', key: generateApiKey() });
  writeSecretFile(file, `${key}\n`);
  return { apiKey: key, team, source: 'generated', file };
}

async function ensureAdminTeam(db: Kysely<Database>): Promise<Team> {
  await db
    .insertInto('teams')
    .values({ id: ADMIN_TEAM_ID, name: ADMIN_TEAM_NAME, created_at: Date.now() })
    .onConflict((oc) => oc.column('id').doNothing())
    .execute();
  const team = await getTeam(db, ADMIN_TEAM_ID);
  if (!team) throw new Error('could not create the admin team');
  return team;
}

type KeyState = 'admin' | 'unknown' | 'revoked' | 'other-team';

async function keyState(db: Kysely<Database>, key: string): Promise<KeyState> {
  const row = await db
    .selectFrom('api_keys')
    .select(['team_id', 'revoked_at'])
    .where('hash', '=', sha256Hex(key))
    .executeTakeFirst();
  if (!row) return 'unknown';
  if (row.team_id !== ADMIN_TEAM_ID) return 'other-team';
  return row.revoked_at === null ? 'admin' : 'revoked';
}

async function adoptKey(db: Kysely<Database>, key: string, name: string, what: string): Promise<void> {
  const state = await keyState(db, key);
  if (state === 'unknown') await createApiKey(db, { teamId: ADMIN_TEAM_ID, name, key });
  else if (state === 'revoked')
    throw new DbError('conflict', `${what} was revoked; set a new key or unset it to use the generated admin key`);
  else if (state === 'other-team')
    throw new DbError('conflict', `${what} is already a key of another team; choose a different admin key`);
}

function writeSecretFile(file: string, content: string): void {
  mkdirSync(join(file, '..'), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, content, { mode: 0o600 });
  chmodSync(tmp, 0o600); // the umask may have narrowed the mode, never widened it; be explicit anyway
  renameSync(tmp, file);
}
