// The "new capsule" form: name, template (or a tag of one, name:tag) or a container image, vcpus,
// memory, timeout, env and metadata. An image is pulled first through @wrenn/sdk's pullImage (POST
// /v1/images/pull), its progress lines (manifest, each layer cached or downloaded, MiB) shown as they
// come; the create that follows finds every layer in the host's cache. A pull that fails (no such
// image, refused credentials) shows the server's message and creates nothing.
import { pullImage } from '@wrenn/sdk';
import { useEffect, useRef, useState } from 'preact/hooks';
import { type Capsule, capsules, getKey, snapshots, type Template, templates } from '../api.js';
import { parsePairs } from '../format.js';
import { ErrorNote, Modal, useAction } from '../ui.js';

const PULL_STATE = { pulling: 'Pulling', pulled: 'Pulled', failed: 'Could not pull' } as const;

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
  const [source, setSource] = useState<'template' | 'image'>('template');
  const [template, setTemplate] = useState(initialTemplate ?? 'minimal');
  const [image, setImage] = useState('');
  const [registryUser, setRegistryUser] = useState('');
  const [registryPassword, setRegistryPassword] = useState('');
  const [pullLog, setPullLog] = useState<string[] | null>(null);
  const [pullState, setPullState] = useState<'pulling' | 'pulled' | 'failed'>('pulling');
  const pullAbort = useRef<AbortController | null>(null);
  const logBox = useRef<HTMLPreElement>(null);
  const [name, setName] = useState('');
  const [vcpus, setVcpus] = useState('');
  const [memory, setMemory] = useState('');
  const [timeout, setTimeoutSec] = useState('300');
  const [env, setEnv] = useState('');
  const [metadata, setMetadata] = useState('');
  const { busy, error, run, setError } = useAction();
  useEffect(() => {
    if (logBox.current) logBox.current.scrollTop = logBox.current.scrollHeight;
  }, [pullLog]);
  // A pull still running when the dialog closes is abandoned (the server finishes it for its cache).
  useEffect(() => {
    if (!open) pullAbort.current?.abort();
  }, [open]);
  useEffect(() => {
    if (!open) return;
    setPullLog(null);
    if (initialTemplate) {
      setTemplate(initialTemplate);
      setSource('template');
    }
    Promise.all([templates.list(), snapshots.list()])
      .then(([t, s]) => {
        const byName = new Map([...t, ...s].map((x) => [x.name, x]));
        setChoices([...byName.values()]);
      })
      .catch((err: unknown) => setError(err));
  }, [open, initialTemplate, setError]);
  // Each template, then each of its tags (name:tag starts the build the tag points at).
  const options = choices.flatMap((t) => [
    { value: t.name, label: `${t.name} (${t.kind})` },
    ...(t.tags ?? []).map((tag) => ({ value: `${t.name}:${tag}`, label: `${t.name}:${tag} (tag)` })),
  ]);
  const submit = async (e: Event) => {
    e.preventDefault();
    await run('create', async () => {
      // The form's own checks first, so a typo costs no pull.
      const body: Record<string, unknown> = {};
      if (name.trim()) body.name = name.trim();
      if (vcpus) body.vcpus = Number(vcpus);
      if (memory) body.memory_mb = Number(memory);
      if (timeout !== '') body.timeout_sec = Number(timeout);
      const envs = parsePairs(env, 'Environment');
      const meta = parsePairs(metadata, 'Metadata');
      if (Object.keys(envs).length) body.env = envs;
      if (Object.keys(meta).length) body.metadata = meta;
      if (source === 'template') body.template = template;
      else {
        const ref = image.trim();
        if (!ref) throw new Error('Type the image to start from, e.g. python:3.12-slim');
        if (registryUser && !registryPassword) throw new Error('A registry user needs its password (or token)');
        const credentials = registryUser ? { username: registryUser, password: registryPassword } : undefined;
        const ctl = new AbortController();
        pullAbort.current = ctl;
        setPullLog([]);
        setPullState('pulling');
        try {
          await pullImage(ref, {
            apiKey: getKey(),
            baseUrl: location.origin,
            signal: ctl.signal,
            ...(credentials ? { registryCredentials: credentials } : {}),
            onProgress: (line) => setPullLog((l) => [...(l ?? []), line]),
          });
        } catch (err) {
          setPullState('failed');
          throw err;
        }
        setPullState('pulled');
        body.image = ref;
        if (credentials) body.registry_credentials = credentials;
      }
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
        <label for="c-source">Start from</label>
        <select
          id="c-source"
          value={source}
          onChange={(e) => setSource((e.target as HTMLSelectElement).value as 'template' | 'image')}
        >
          <option value="template">a template, tag or snapshot</option>
          <option value="image">a container image</option>
        </select>
        {source === 'template' ? (
          <>
            <label for="c-template">Template</label>
            <select
              id="c-template"
              value={template}
              onChange={(e) => setTemplate((e.target as HTMLSelectElement).value)}
            >
              {!options.some((o) => o.value === template) && <option value={template}>{template}</option>}
              {options.map((o) => (
                <option key={o.value} value={o.value}>
                  {o.label}
                </option>
              ))}
            </select>
          </>
        ) : (
          <>
            <label for="c-image">Image</label>
            <input
              id="c-image"
              class="mono"
              placeholder="python:3.12-slim, registry.example.com/team/app:tag, …@sha256:…"
              value={image}
              onInput={(e) => setImage((e.target as HTMLInputElement).value)}
            />
            <p class="hint span2">
              Pulled from its registry (Docker Hub when none is named) into the host's layer cache; the image's ENV,
              WORKDIR and USER apply in the capsule. Credentials are for private registries (default: the host's).
            </p>
            <label for="c-reg-user">Registry user</label>
            <input
              id="c-reg-user"
              autocomplete="off"
              placeholder="anonymous"
              value={registryUser}
              onInput={(e) => setRegistryUser((e.target as HTMLInputElement).value)}
            />
            <label for="c-reg-password">Registry password</label>
            <input
              id="c-reg-password"
              type="password"
              autocomplete="off"
              value={registryPassword}
              onInput={(e) => setRegistryPassword((e.target as HTMLInputElement).value)}
            />
          </>
        )}
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
          {pullLog !== null && (
            <>
              <p role="status" aria-label="Image pull" class="muted">
                {PULL_STATE[pullState]} <code>{image.trim()}</code>:{' '}
                {pullLog[pullLog.length - 1]?.trim() ?? 'waiting for the registry…'}
              </p>
              <pre class="build-log" ref={logBox} role="log" aria-label="Image pull progress">
                {pullLog.join('\n') || 'Waiting for the registry…'}
              </pre>
            </>
          )}
        </div>
        <div class="actions span2">
          <button type="button" onClick={onClose}>
            Cancel
          </button>
          <button type="submit" class="primary" disabled={!!busy}>
            {busy ? (pullLog !== null && pullState === 'pulling' ? 'Pulling image…' : 'Creating…') : 'Create capsule'}
          </button>
        </div>
      </form>
    </Modal>
  );
}
