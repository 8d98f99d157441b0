// Building a template from a Dockerfile (POST /v1/templates, with ARG values as build arguments)
// with its log streamed live from /v1/templates/builds/:id/logs and its steps (n/N, cached, done,
// failed) read out of that log as it arrives. On a control plane whose API has no builds, the
// form is shown disabled with a note saying why.
import { buildProgress } from '@wrenn/protocol/contract';
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, raw } from '../api.js';
import { ErrorNote, useAction } from '../ui.js';

interface Build {
  build_id: string;
  template: string;
  status: 'pending' | 'building' | 'ready' | 'error';
  error: string | null;
}

async function base64(file: File): Promise<string> {
  const bytes = new Uint8Array(await file.arrayBuffer());
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

/** NAME=value lines (blank lines skipped) into build arguments; throws naming a bad line. */
function parseBuildArgs(text: string): Record<string, string> | undefined {
  const out: Record<string, string> = {};
  for (const [i, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (line === '') continue;
    const eq = line.indexOf('=');
    if (eq <= 0) throw new Error(`build arguments line ${i + 1}: expected NAME=value, got '${line}'`);
    out[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return Object.keys(out).length ? out : undefined;
}

const STATE_LABEL = { running: 'running', done: 'done', cached: 'cached', failed: 'failed' } as const;

/** The steps read out of the log so far: a bar of n/N and one row per step with its state. */
function BuildSteps({ log }: { log: string }) {
  const p = buildProgress(log);
  if (p.total === null) return null;
  const finished = p.steps.filter((s) => s.state !== 'running').length;
  const running = p.steps.find((s) => s.state === 'running');
  return (
    <div class="build-steps" data-testid="build-steps">
      <p>
        <progress value={finished} max={p.total} aria-label="Build progress" />{' '}
        <span data-testid="build-step-count">
          {running ? `Step ${running.n}/${p.total}` : `${finished}/${p.total} steps`}
          {p.stage ? ` (stage ${p.stage})` : ''}
        </span>
      </p>
      <ol aria-label="Build steps">
        {p.steps.map((s) => (
          <li key={s.n}>
            <span class={`badge step-${s.state}`}>{STATE_LABEL[s.state]}</span> <code>{s.text}</code>
          </li>
        ))}
      </ol>
      {running && p.lastLine && (
        <p class="muted mono" data-testid="build-activity">
          {p.lastLine.slice(0, 200)}
        </p>
      )}
    </div>
  );
}

export function TemplateBuild({ available, onBuilt }: { available: boolean | null; onBuilt: () => void }) {
  const [name, setName] = useState('');
  const [dockerfile, setDockerfile] = useState('FROM minimal\nRUN echo "hello from my template" > /hello.txt\n');
  const [files, setFiles] = useState<File[]>([]);
  const [buildArgs, setBuildArgs] = useState('');
  const [log, setLog] = useState('');
  const [build, setBuild] = useState<Build | null>(null);
  const act = useAction();
  const abort = useRef<AbortController | null>(null);
  const logBox = useRef<HTMLPreElement>(null);
  useEffect(() => () => abort.current?.abort(), []);
  useEffect(() => {
    if (logBox.current) logBox.current.scrollTop = logBox.current.scrollHeight;
  }, [log]);
  const disabled = available !== true;

  const follow = async (id: string) => {
    const ctl = new AbortController();
    abort.current = ctl;
    const res = await raw('GET', `/v1/templates/builds/${encodeURIComponent(id)}/logs`, { signal: ctl.signal });
    const reader = res.body!.getReader();
    const dec = new TextDecoder();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      setLog((l) => l + dec.decode(value, { stream: true }));
    }
    const final = await api<Build>('GET', `/v1/templates/builds/${encodeURIComponent(id)}`);
    setBuild(final);
    onBuilt();
  };

  const submit = (e: Event) => {
    e.preventDefault();
    abort.current?.abort();
    setLog('');
    setBuild(null);
    void act.run('build', async () => {
      const body: Record<string, unknown> = { name: name.trim(), dockerfile };
      const args = parseBuildArgs(buildArgs);
      if (args) body.build_args = args;
      if (files.length)
        body.files = Object.fromEntries(await Promise.all(files.map(async (f) => [f.name, await base64(f)])));
      const started = await api<Build>('POST', '/v1/templates', body);
      setBuild({ ...started, error: null });
      await follow(started.build_id);
    });
  };

  return (
    <form class="grid-form build" onSubmit={submit} aria-describedby="build-note">
      {available === false && (
        <p id="build-note" class="notice span2" role="note">
          Template builds are not available on this control plane: its API has no <code>POST /v1/templates</code>.
          Snapshots of capsules still work; this form turns on by itself once the API offers builds.
        </p>
      )}
      {available === null && (
        <p id="build-note" class="muted span2">
          Checking whether this control plane can build templates…
        </p>
      )}
      {available === true && (
        <p id="build-note" class="hint span2">
          <code>FROM</code> names a template (minimal, base or one of yours), a container image (
          <code>python:3.12-slim</code>, <code>registry/name:tag</code>; its pull goes to the log) or an earlier stage (
          <code>FROM … AS name</code>, <code>COPY --from=name</code>). Files that <code>COPY</code> uses go in the build
          context; <code>ARG</code> values in the build arguments.
        </p>
      )}
      <label for="b-name">Template name</label>
      <input
        id="b-name"
        required
        disabled={disabled}
        pattern="[a-z0-9][a-z0-9._\-]{0,62}"
        title="Lower-case letters, digits, '.', '_' and '-', starting with a letter or digit"
        value={name}
        onInput={(e) => setName((e.target as HTMLInputElement).value)}
      />
      <label for="b-dockerfile">Dockerfile</label>
      <textarea
        id="b-dockerfile"
        rows={6}
        class="mono"
        disabled={disabled}
        value={dockerfile}
        onInput={(e) => setDockerfile((e.target as HTMLTextAreaElement).value)}
      />
      <label for="b-args">Build arguments</label>
      <textarea
        id="b-args"
        rows={2}
        class="mono"
        placeholder="NAME=value, one per line"
        disabled={disabled}
        value={buildArgs}
        onInput={(e) => setBuildArgs((e.target as HTMLTextAreaElement).value)}
      />
      <label for="b-files">Build context files</label>
      <input
        id="b-files"
        type="file"
        multiple
        disabled={disabled}
        onChange={(e) => setFiles([...((e.target as HTMLInputElement).files ?? [])])}
      />
      <div class="actions span2">
        <button type="submit" class="primary" disabled={disabled || !!act.busy}>
          {act.busy ? 'Building…' : 'Build template'}
        </button>
      </div>
      <div class="span2">
        <ErrorNote error={act.error} />
        {build && (
          <p role="status">
            Build <code>{build.build_id}</code> of <strong>{build.template}</strong>:{' '}
            <span class={`badge b-${build.status}`}>{build.status}</span>
            {build.error ? ` — ${build.error}` : ''}
          </p>
        )}
        <BuildSteps log={log} />
        {(log || build) && (
          <pre class="build-log" ref={logBox} role="log" aria-label="Build log" data-testid="build-log">
            {log || 'Waiting for the log…'}
          </pre>
        )}
      </div>
    </form>
  );
}
