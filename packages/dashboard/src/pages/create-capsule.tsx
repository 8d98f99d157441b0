// The "new capsule" form: name, template, vcpus, memory, timeout, env and metadata.
import { useEffect, useState } from 'preact/hooks';
import { type Capsule, capsules, snapshots, type Template, templates } from '../api.js';
import { parsePairs } from '../format.js';
import { ErrorNote, Modal, useAction } from '../ui.js';

export function CreateCapsuleDialog({
  open,
  onClose,
  onCreated,
  initialTemplate,
}: {
  open: boolean;
  onClose: () => void;
  onCreated: (c: Capsule) => void;
  initialTemplate?: string;
}) {
  const [choices, setChoices] = useState<Template[]>([]);
  const [template, setTemplate] = useState(initialTemplate ?? 'minimal');
  const [name, setName] = useState('');
  const [vcpus, setVcpus] = useState('');
  const [memory, setMemory] = useState('');
  const [timeout, setTimeoutSec] = useState('300');
  const [env, setEnv] = useState('');
  const [metadata, setMetadata] = useState('');
  const { busy, error, run, setError } = useAction();
  useEffect(() => {
    if (!open) return;
    if (initialTemplate) setTemplate(initialTemplate);
    Promise.all([templates.list(), snapshots.list()])
      .then(([t, s]) => {
        const byName = new Map([...t, ...s].map((x) => [x.name, x]));
        setChoices([...byName.values()]);
      })
      .catch((err: unknown) => setError(err));
  }, [open, initialTemplate, setError]);
  const submit = async (e: Event) => {
    e.preventDefault();
    await run('create', async () => {
      const body: Record<string, unknown> = { template };
      if (name.trim()) body.name = name.trim();
      if (vcpus) body.vcpus = Number(vcpus);
      if (memory) body.memory_mb = Number(memory);
      if (timeout !== '') body.timeout_sec = Number(timeout);
      const envs = parsePairs(env, 'Environment');
      const meta = parsePairs(metadata, 'Metadata');
      if (Object.keys(envs).length) body.env = envs;
      if (Object.keys(meta).length) body.metadata = meta;
      const c = await capsules.create(body);
      onCreated(c);
    });
  };
  return (
    <Modal title="New capsule" open={open} onClose={onClose}>
      <form onSubmit={submit} class="grid-form">
        <label for="c-name">Name (optional)</label>
        <input
          id="c-name"
          maxLength={100}
          placeholder="to tell it apart"
          value={name}
          onInput={(e) => setName((e.target as HTMLInputElement).value)}
        />
        <label for="c-template">Template</label>
        <select id="c-template" value={template} onChange={(e) => setTemplate((e.target as HTMLSelectElement).value)}>
          {!choices.some((c) => c.name === template) && <option value={template}>{template}</option>}
          {choices.map((t) => (
            <option key={t.name} value={t.name}>
              {t.name} ({t.kind})
            </option>
          ))}
        </select>
        <label for="c-vcpus">vCPUs</label>
        <input
          id="c-vcpus"
          type="number"
          min={1}
          max={64}
          placeholder="template default"
          value={vcpus}
          onInput={(e) => setVcpus((e.target as HTMLInputElement).value)}
        />
        <label for="c-mem">Memory (MiB)</label>
        <input
          id="c-mem"
          type="number"
          min={64}
          step={64}
          placeholder="template default"
          value={memory}
          onInput={(e) => setMemory((e.target as HTMLInputElement).value)}
        />
        <label for="c-timeout">Timeout (seconds, 0 = never)</label>
        <input
          id="c-timeout"
          type="number"
          min={0}
          value={timeout}
          onInput={(e) => setTimeoutSec((e.target as HTMLInputElement).value)}
        />
        <label for="c-env">Environment (KEY=value per line)</label>
        <textarea id="c-env" rows={3} value={env} onInput={(e) => setEnv((e.target as HTMLTextAreaElement).value)} />
        <label for="c-meta">Metadata (key=value per line)</label>
        <textarea
          id="c-meta"
          rows={2}
          value={metadata}
          onInput={(e) => setMetadata((e.target as HTMLTextAreaElement).value)}
        />
        <div class="span2">
          <ErrorNote error={error} />
        </div>
        <div class="actions span2">
          <button type="button" onClick={onClose}>
            Cancel
          </button>
          <button type="submit" class="primary" disabled={!!busy}>
            {busy ? 'Creating…' : 'Create capsule'}
          </button>
        </div>
      </form>
    </Modal>
  );
}
