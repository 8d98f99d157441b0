// Plain capsule fields: given at creation, stored with the capsule and given back as they were
// sent, with no behaviour on the host. The native API takes each one in the create body and returns
// it in the capsule JSON (both schemas spread these properties), the control plane stores them
// together (the capsules table's plain_fields JSON column) and forks copy them, so a new plain field
// is an entry here plus the SDK, CLI and dashboard code that show it: no migration, route or
// repository change. Each entry is optional (absent from the JSON when it was not given).
import { type Static, Type } from 'typebox';

export const CAPSULE_PLAIN_FIELDS = {
  name: Type.Optional(
    Type.String({
      minLength: 1,
      maxLength: 100,
      // Printable: shown in lists and tables as it is.
      pattern: '^[^\\u0000-\\u001f\\u007f]+$',
      description: 'A name for people to tell capsules apart by (not unique; the id stays the key)',
    }),
  ),
};

const PlainFieldsSchema = Type.Object(CAPSULE_PLAIN_FIELDS);
/** The plain fields of one capsule, as the native API's JSON spells them. */
export type CapsulePlainFieldsJson = Static<typeof PlainFieldsSchema>;

/** The plain fields found in `body` (a validated create body or capsule JSON). */
export function pickPlainFields(body: object): CapsulePlainFieldsJson {
  const src = body as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(CAPSULE_PLAIN_FIELDS)) if (src[key] !== undefined) out[key] = src[key];
  return out as CapsulePlainFieldsJson;
}

/** `body` without its plain fields (the rest of a create body or capsule JSON). */
export function withoutPlainFields<T extends object>(body: T): Omit<T, keyof CapsulePlainFieldsJson> {
  const out = { ...body } as Record<string, unknown>;
  for (const key of Object.keys(CAPSULE_PLAIN_FIELDS)) delete out[key];
  return out as Omit<T, keyof CapsulePlainFieldsJson>;
}
