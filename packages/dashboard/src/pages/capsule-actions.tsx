// Pause, resume, snapshot and destroy: the same buttons on the list and on a capsule's page.
import { useState } from 'preact/hooks';
import { type Capsule, capsules, snapshots } from '../api.js';
import { Confirm, ErrorNote, Modal, useAction } from '../ui.js';

export function CapsuleActions({
  capsule,
  onChange,
  onDestroyed,
}: {
  capsule: Capsule;
  onChange: (c?: Capsule) => void;
  onDestroyed?: () => void;
}) {
  const { busy, error, run } = useAction();
  const [confirm, setConfirm] = useState(false);
  const [snap, setSnap] = useState(false);
  const s = capsule.state;
  const label = (verb: string) => `${verb} ${capsule.id}`;
  return (
    <div class="row-actions">
      {s === 'running' && (
        <button
          type="button"
          disabled={!!busy}
          aria-label={label('Pause')}
          onClick={() => run('pause', async () => onChange(await capsules.pause(capsule.id)))}
        >
          {busy === 'pause' ? 'Pausing…' : 'Pause'}
        </button>
      )}
      {(s === 'paused' || s === 'hibernated') && (
        <button
          type="button"
          disabled={!!busy}
          aria-label={label('Resume')}
          onClick={() => run('resume', async () => onChange(await capsules.resume(capsule.id)))}
        >
          {busy === 'resume' ? 'Resuming…' : 'Resume'}
        </button>
      )}
      {(s === 'running' || s === 'paused') && (
        <button type="button" disabled={!!busy} aria-label={label('Snapshot')} onClick={() => setSnap(true)}>
          Snapshot
        </button>
      )}
      {s !== 'stopped' && (
        <button
          type="button"
          class="danger"
          disabled={!!busy}
          aria-label={label('Destroy')}
          onClick={() => setConfirm(true)}
        >
          {busy === 'destroy' ? 'Destroying…' : 'Destroy'}
        </button>
      )}
      <Confirm
        open={confirm}
        title="Destroy capsule?"
        body={
          <>
            <code>{capsule.id}</code> and everything in it will be gone for good.
          </>
        }
        confirmLabel="Destroy"
        onClose={() => setConfirm(false)}
        onConfirm={() =>
          void run('destroy', async () => {
            await capsules.destroy(capsule.id);
            onDestroyed?.();
            onChange();
          })
        }
      />
      <SnapshotDialog open={snap} capsule={capsule} onClose={() => setSnap(false)} />
      {error ? <ErrorNote error={error} /> : null}
    </div>
  );
}

function SnapshotDialog({ open, capsule, onClose }: { open: boolean; capsule: Capsule; onClose: () => void }) {
  const [name, setName] = useState('');
  const [done, setDone] = useState('');
  const { busy, error, run, setError } = useAction();
  const submit = async (e: Event) => {
    e.preventDefault();
    const ok = await run('snap', async () => {
      const t = await snapshots.create(capsule.id, name.trim());
      setDone(t.name);
    });
    if (ok) setName('');
  };
  const close = () => {
    setDone('');
    setError(undefined);
    onClose();
  };
  return (
    <Modal title={`Snapshot ${capsule.id}`} open={open} onClose={close}>
      {done ? (
        <>
          <p role="status">
            Snapshot <strong>{done}</strong> is ready. Start capsules from it on the Templates &amp; snapshots page or
            by creating a capsule with template <code>{done}</code>.
          </p>
          <div class="actions">
            <button type="button" class="primary" onClick={close}>
              Done
            </button>
          </div>
        </>
      ) : (
        <form onSubmit={submit}>
          <label for="snap-name">Snapshot name</label>
          <input
            id="snap-name"
            required
            pattern="[a-z0-9][a-z0-9._\-]{0,62}"
            title="Lower-case letters, digits, '.', '_' and '-', starting with a letter or digit"
            value={name}
            onInput={(e) => setName((e.target as HTMLInputElement).value)}
          />
          <p class="hint">Lower-case letters, digits, '.', '_' and '-'. The capsule keeps running.</p>
          <ErrorNote error={error} />
          <div class="actions">
            <button type="button" onClick={close}>
              Cancel
            </button>
            <button type="submit" class="primary" disabled={!!busy}>
              {busy ? 'Snapshotting…' : 'Create snapshot'}
            </button>
          </div>
        </form>
      )}
    </Modal>
  );
}
