// API keys of the team: create (the key is shown once), revoke.
import { useState } from 'preact/hooks';
import { type ApiKey, apiKeys } from '../api.js';
import { ago } from '../format.js';
import { Confirm, Empty, ErrorNote, Modal, TableHead, useAction, usePoll } from '../ui.js';

export function KeysPage() {
  const list = usePoll(() => apiKeys.list(), []);
  const act = useAction();
  const [name, setName] = useState('');
  const [created, setCreated] = useState<string | null>(null);
  const [createdE2b, setCreatedE2b] = useState<string | null>(null);
  const [copied, setCopied] = useState(false);
  const [toRevoke, setToRevoke] = useState<ApiKey | null>(null);
  const create = (e: Event) => {
    e.preventDefault();
    void act.run('create', async () => {
      const k = await apiKeys.create(name.trim());
      setName('');
      setCopied(false);
      setCreated(k.key);
      setCreatedE2b(k.e2b_key);
      await list.refresh();
    });
  };
  return (
    <section aria-labelledby="keys-title">
      <h1 id="keys-title">API keys</h1>
      <form class="filters" onSubmit={create}>
        <label class="grow">
          Name of the new key
          <input
            required
            maxLength={200}
            value={name}
            placeholder="e.g. ci, laptop"
            onInput={(e) => setName((e.target as HTMLInputElement).value)}
          />
        </label>
        <button type="submit" class="primary" disabled={!!act.busy}>
          Create key
        </button>
      </form>
      <ErrorNote error={act.error} />
      <ErrorNote error={list.error} onRetry={() => void list.refresh()} />
      {list.data && list.data.length === 0 ? (
        <Empty>No API keys.</Empty>
      ) : (
        <table>
          <caption class="sr-only">API keys</caption>
          <TableHead columns={['Name', 'Key starts with', 'Created', 'Last used', 'Status']} actions />
          <tbody>
            {(list.data ?? []).map((k) => (
              <tr key={k.id}>
                <th scope="row">{k.name}</th>
                <td class="mono">{k.prefix}…</td>
                <td title={k.created_at}>{ago(k.created_at)} ago</td>
                <td>{k.last_used_at ? `${ago(k.last_used_at)} ago` : 'never'}</td>
                <td>
                  {k.revoked_at ? (
                    <span class="badge s-stopped">revoked</span>
                  ) : (
                    <span class="badge s-running">active</span>
                  )}
                </td>
                <td>
                  {!k.revoked_at && (
                    <button type="button" class="danger" aria-label={`Revoke ${k.name}`} onClick={() => setToRevoke(k)}>
                      Revoke
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <Modal title="Your new API key" open={created !== null} onClose={() => setCreated(null)}>
        <p>Copy it now: it is shown only this once.</p>
        <p>
          <code class="secret" data-testid="new-key">
            {created}
          </code>
        </p>
        <p>
          The same key for the e2b SDKs (<code>E2B_API_KEY</code>; their own key check wants <code>e2b_</code>):
        </p>
        <p>
          <code class="secret" data-testid="new-key-e2b">
            {createdE2b}
          </code>
        </p>
        <div class="actions">
          <button
            type="button"
            onClick={() => {
              void navigator.clipboard?.writeText(created ?? '').then(() => setCopied(true));
            }}
          >
            {copied ? 'Copied' : 'Copy'}
          </button>
          <button type="button" class="primary" onClick={() => setCreated(null)}>
            Done
          </button>
        </div>
      </Modal>
      <Confirm
        open={toRevoke !== null}
        title="Revoke key?"
        body={
          <>
            Programs using <strong>{toRevoke?.name}</strong> ({toRevoke?.prefix}…) will be refused from now on. If it is
            the key you signed in with, you will be signed out.
          </>
        }
        confirmLabel="Revoke"
        onClose={() => setToRevoke(null)}
        onConfirm={() => {
          const k = toRevoke;
          if (k)
            void act.run('revoke', async () => {
              await apiKeys.revoke(k.id);
              await list.refresh();
            });
        }}
      />
    </section>
  );
}
