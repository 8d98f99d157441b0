// Building a template from a Dockerfile. The control plane gains this API separately: until its
// OpenAPI document lists POST /v1/templates, the form is shown disabled with a note saying why.
import { useState } from 'preact/hooks';
import { api } from '../api.js';
import { ErrorNote, useAction } from '../ui.js';

export function TemplateBuild({ available, ops, onBuilt }: { available: boolean | null; ops: Set<string> | null; onBuilt: () => void }) {
  const [name, setName] = useState('');
  const [dockerfile, setDockerfile] = useState('FROM debian:bookworm-slim\nRUN apt-get update && apt-get install -y python3\n');
  const [log, setLog] = useState('');
  const act = useAction();
  const disabled = available !== true;
  const submit = (e: Event) => {
    e.preventDefault();
    void act.run('build', async () => {
      setLog('');
      const res = await api<Record<string, unknown>>('POST', '/v1/templates', { name: name.trim(), dockerfile });
      setLog((l) => `${l}build accepted: ${JSON.stringify(res)}\n`);
      onBuilt();
    });
  };
  void ops;
  return (
    <form class="grid-form build" onSubmit={submit} aria-describedby="build-note">
      {available === false && (
        <p id="build-note" class="notice span2" role="note">
          Template builds are not available on this control plane yet: its API has no <code>POST /v1/templates</code>. Snapshots of
          capsules work today; this form turns on by itself once the API offers builds.
        </p>
      )}
      {available === null && (
        <p id="build-note" class="muted span2">
          Checking whether this control plane can build templates…
        </p>
      )}
      <label for="b-name">Template name</label>
      <input id="b-name" required disabled={disabled} value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} />
      <label for="b-dockerfile">Dockerfile</label>
      <textarea id="b-dockerfile" rows={6} class="mono" disabled={disabled} value={dockerfile} onInput={(e) => setDockerfile((e.target as HTMLTextAreaElement).value)} />
      <div class="actions span2">
        <button type="submit" class="primary" disabled={disabled || !!act.busy}>
          {act.busy ? 'Building…' : 'Build template'}
        </button>
      </div>
      <div class="span2">
        <ErrorNote error={act.error} />
        {log && (
          <pre class="build-log" aria-live="polite" aria-label="Build log">
            {log}
          </pre>
        )}
      </div>
    </form>
  );
}
