// A capsule's egress policy on its page: allow_out, deny_out and the domains with rules (header
// values are secrets: the list shows domains only, the form masks them), and a dialog that replaces the policy of a
// running or paused capsule with PUT /v1/capsules/:id/network. The server judges every entry; its
// 400 message is shown as it is, so the dashboard keeps no copy of the contract's rules.
import { useEffect, useState } from 'preact/hooks';
import { type CapsuleNetworkJson, capsules } from '../api.js';
import { ErrorNote, Modal, useAction } from '../ui.js';

const tags = (list: string[]) =>
  list.length
    ? list.map((v) => (
        <span key={v} class="tag">
          {v}
        </span>
      ))
    : 'none';

const MASK = '••••••';

/** The rules with every header value replaced by MASK. */
function maskRules(rules: CapsuleNetworkJson['rules']): CapsuleNetworkJson['rules'] {
  return Object.fromEntries(
    Object.entries(rules).map(([domain, list]) => [
      domain,
      list.map((r) =>
        r.transform?.headers
          ? { transform: { headers: Object.fromEntries(Object.keys(r.transform.headers).map((k) => [k, MASK])) } }
          : r,
      ),
    ]),
  );
}

const lines = (text: string) =>
  text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);

/** The policy as rows of the capsule's facts, with an Edit button when it can change. */
export function EgressRows({ id, editable }: { id: string; editable: boolean }) {
  const [p, setP] = useState<CapsuleNetworkJson | undefined>(undefined);
  const [editing, setEditing] = useState(false);
  useEffect(() => {
    capsules.network(id).then(setP, () => setP(undefined));
  }, [id]);
  if (!p) return null;
  const empty = p.allow_out.length === 0 && p.deny_out.length === 0 && Object.keys(p.rules).length === 0;
  if (empty && !editable) return null;
  return (
    <>
      <dt>Egress</dt>
      <dd id="egress-policy">
        {empty ? (
          <span class="muted">no policy (internet as the capsule was created)</span>
        ) : (
          <>
            allow {tags(p.allow_out)} · deny {tags(p.deny_out)}
            {Object.keys(p.rules).length > 0 && <> · rules for {tags(Object.keys(p.rules))}</>}
          </>
        )}
        {editable && (
          <button type="button" class="link" onClick={() => setEditing(true)}>
            Edit egress policy
          </button>
        )}
      </dd>
      {editing && <EgressDialog id={id} policy={p} onClose={() => setEditing(false)} onSaved={setP} />}
    </>
  );
}

function EgressDialog(p: {
  id: string;
  policy: CapsuleNetworkJson;
  onClose: () => void;
  onSaved: (n: CapsuleNetworkJson) => void;
}) {
  const [allow, setAllow] = useState(p.policy.allow_out.join('\n'));
  const [deny, setDeny] = useState(p.policy.deny_out.join('\n'));
  // Header values are secrets: the form shows them masked; left as shown, the rules are kept.
  const masked = Object.keys(p.policy.rules).length > 0 ? JSON.stringify(maskRules(p.policy.rules), null, 2) : '';
  const [rules, setRules] = useState(masked);
  const { busy, error, run, setError } = useAction();
  const submit = async (e: Event) => {
    e.preventDefault();
    let parsedRules: unknown;
    try {
      parsedRules = rules === masked && masked ? p.policy.rules : rules.trim() ? JSON.parse(rules) : undefined;
    } catch (err) {
      return setError(new Error(`Rules are not JSON: ${(err as Error).message}`));
    }
    if (parsedRules !== p.policy.rules && JSON.stringify(parsedRules ?? null).includes(MASK)) {
      return setError(new Error(`Rules you change need their header values again (in place of ${MASK})`));
    }
    const body = {
      allow_out: lines(allow),
      deny_out: lines(deny),
      ...(parsedRules !== undefined ? { rules: parsedRules } : {}),
    };
    await run('save', async () => {
      p.onSaved(await capsules.setNetwork(p.id, body));
      p.onClose();
    });
  };
  return (
    <Modal title={`Egress policy of ${p.id}`} open onClose={p.onClose}>
      <form onSubmit={submit} class="grid-form">
        <label for="egress-allow">Allow out</label>
        <textarea
          id="egress-allow"
          rows={4}
          value={allow}
          onInput={(e) => setAllow((e.target as HTMLTextAreaElement).value)}
        />
        <p class="hint span2">One per line: an IPv4 CIDR or address, a domain, or *.domain. Allow beats deny.</p>
        <label for="egress-deny">Deny out</label>
        <textarea
          id="egress-deny"
          rows={3}
          value={deny}
          onInput={(e) => setDeny((e.target as HTMLTextAreaElement).value)}
        />
        <p class="hint span2">
          One per line: an IPv4 CIDR or address; 0.0.0.0/0 denies all that allow out does not name.
        </p>
        <label for="egress-rules">Rules (JSON)</label>
        <textarea
          id="egress-rules"
          rows={4}
          placeholder={'{ "api.example.com": [{ "transform": { "headers": { "Authorization": "Bearer …" } } }] }'}
          value={rules}
          onInput={(e) => setRules((e.target as HTMLTextAreaElement).value)}
        />
        <p class="hint span2">
          Headers the egress proxy sets on requests to a domain; the values never enter the capsule. Saving replaces the
          whole policy for new connections; an empty field clears it.
        </p>
        <div class="span2">
          <ErrorNote error={error} />
        </div>
        <div class="actions span2">
          <button type="button" onClick={p.onClose}>
            Cancel
          </button>
          <button type="submit" class="primary" disabled={!!busy}>
            {busy ? 'Saving…' : 'Save policy'}
          </button>
        </div>
      </form>
    </Modal>
  );
}
