// One capsule: its details and actions, and tabs for the terminal, a notebook (code-interpreter
// templates), files, processes, charts, open ports (with their proxy URLs) and lifecycle events.
import { useEffect, useRef, useState } from 'preact/hooks';
import { type Capsule, capsules, type Metrics } from '../api.js';
import { ago, bytes, pct } from '../format.js';
import { navigate } from '../router.js';
import { Empty, ErrorNote, Link, StateBadge, TableHead, useAction, usePoll } from '../ui.js';
import { CapsuleActions } from './capsule-actions.js';
import { EgressRows } from './capsule-network.js';
import { FilesView } from './files.js';
import { NotebookView } from './notebook.js';

/** xterm.js is most of the bundle: it loads only when a terminal is opened. */
function TerminalView({ capsuleId }: { capsuleId: string }) {
  const [mod, setMod] = useState<typeof import('./terminal.js') | null>(null);
  const [error, setError] = useState<unknown>(undefined);
  useEffect(() => {
    import('./terminal.js').then(setMod, setError);
  }, []);
  if (error) return <ErrorNote error={error} />;
  return mod ? <mod.TerminalView capsuleId={capsuleId} /> : <p class="muted">Loading the terminal…</p>;
}

const TABS = ['Terminal', 'Notebook', 'Files', 'Processes', 'Metrics', 'Ports', 'Events'] as const;
type Tab = (typeof TABS)[number];
const NEEDS_RUNNING: Tab[] = ['Terminal', 'Notebook', 'Files', 'Processes', 'Metrics', 'Ports'];

export function CapsulePage({ id }: { id: string }) {
  const cap = usePoll(() => capsules.get(id), [id], 3000);
  const [tab, setTab] = useState<Tab>('Terminal');
  const tabRefs = useRef<(HTMLButtonElement | null)[]>([]);
  const c = cap.data;
  const onKey = (e: KeyboardEvent, i: number) => {
    const n =
      e.key === 'ArrowRight'
        ? i + 1
        : e.key === 'ArrowLeft'
          ? i - 1
          : e.key === 'Home'
            ? 0
            : e.key === 'End'
              ? TABS.length - 1
              : null;
    if (n === null) return;
    e.preventDefault();
    const j = (n + TABS.length) % TABS.length;
    setTab(TABS[j]!);
    tabRefs.current[j]?.focus();
  };
  if (cap.error && !c) {
    return (
      <section>
        <h1>{id}</h1>
        <ErrorNote error={cap.error} onRetry={() => void cap.refresh()} />
        <p>
          <Link href="/">Back to the capsules</Link>
        </p>
      </section>
    );
  }
  if (!c) return <p class="muted">Loading {id}…</p>;
  const running = c.state === 'running';
  return (
    <section aria-labelledby="capsule-title">
      <p class="crumbs">
        <Link href="/">Capsules</Link> / {c.id}
      </p>
      <div class="page-head">
        <h1 id="capsule-title" class="mono">
          {c.id} <StateBadge state={c.state} />
        </h1>
        <CapsuleActions
          capsule={c}
          onChange={(n) => (n ? cap.setData(n) : void cap.refresh())}
          onDestroyed={() => navigate('/')}
        />
      </div>
      <dl class="facts">
        {c.name && (
          <>
            <dt>Name</dt>
            <dd>{c.name}</dd>
          </>
        )}
        <dt>Template</dt>
        <dd>{c.template}</dd>
        <dt>Runtime</dt>
        <dd>{c.runtime}</dd>
        <dt>Host</dt>
        <dd class="mono">{c.host_id ?? '—'}</dd>
        <dt>Size</dt>
        <dd>
          {c.vcpus} vCPU, {c.memory_mb} MiB
        </dd>
        <dt>Age</dt>
        <dd title={c.created_at}>{ago(c.created_at)}</dd>
        <dt>Timeout</dt>
        <dd>
          {c.timeout_sec === 0
            ? 'never'
            : `${c.timeout_sec}s then ${c.timeout_action}${c.expires_at ? ` (at ${new Date(c.expires_at).toLocaleTimeString()})` : ''}`}
        </dd>
        {Object.keys(c.metadata).length > 0 && (
          <>
            <dt>Metadata</dt>
            <dd>
              {Object.entries(c.metadata).map(([k, v]) => (
                <span key={k} class="tag">
                  {k}={v}
                </span>
              ))}
            </dd>
          </>
        )}
        {c.state !== 'stopped' && c.state !== 'error' && c.state !== 'starting' && (
          <EgressRows id={c.id} editable={c.state === 'running' || c.state === 'paused'} />
        )}
        {c.error && (
          <>
            <dt>Error</dt>
            <dd class="error-text">{c.error}</dd>
          </>
        )}
      </dl>
      <div role="tablist" aria-label="Capsule views" class="tabs">
        {TABS.map((t, i) => (
          <button
            key={t}
            type="button"
            role="tab"
            id={`tab-${t}`}
            aria-selected={tab === t}
            aria-controls={`panel-${t}`}
            tabIndex={tab === t ? 0 : -1}
            ref={(el) => {
              tabRefs.current[i] = el;
            }}
            onClick={() => setTab(t)}
            onKeyDown={(e) => onKey(e, i)}
          >
            {t}
          </button>
        ))}
      </div>
      <div role="tabpanel" id={`panel-${tab}`} aria-labelledby={`tab-${tab}`} class="panel">
        {NEEDS_RUNNING.includes(tab) && !running ? (
          <Empty>
            The capsule is {c.state}: its {tab.toLowerCase()} can be seen only while it runs.
            {c.state === 'paused' || c.state === 'hibernated' ? ' Resume it to continue where it left off.' : ''}
          </Empty>
        ) : tab === 'Terminal' ? (
          <TerminalView capsuleId={c.id} />
        ) : tab === 'Notebook' ? (
          <NotebookView capsule={c} />
        ) : tab === 'Files' ? (
          <FilesView capsuleId={c.id} />
        ) : tab === 'Processes' ? (
          <ProcessesView capsuleId={c.id} />
        ) : tab === 'Metrics' ? (
          <MetricsView capsule={c} />
        ) : tab === 'Ports' ? (
          <PortsView capsuleId={c.id} />
        ) : (
          <EventsView capsuleId={c.id} />
        )}
      </div>
    </section>
  );
}

function ProcessesView({ capsuleId }: { capsuleId: string }) {
  const list = usePoll(() => capsules.processes(capsuleId).then((r) => r.processes), [capsuleId], 5000);
  const act = useAction();
  return (
    <>
      <ErrorNote error={list.error ?? act.error} onRetry={() => void list.refresh()} />
      {list.data && list.data.length === 0 ? (
        <Empty>No processes were started through Wrenn in this capsule (commands and terminals show up here).</Empty>
      ) : (
        <table>
          <caption class="sr-only">Processes</caption>
          <TableHead columns={['PID', 'Tag', 'Command', 'Folder']} actions />
          <tbody>
            {(list.data ?? []).map((p) => (
              <tr key={p.pid}>
                <th scope="row">{p.pid}</th>
                <td class="mono">{p.tag || '—'}</td>
                <td class="mono">{[p.cmd, ...p.args].join(' ')}</td>
                <td class="mono">{p.cwd || '—'}</td>
                <td>
                  <button
                    type="button"
                    class="danger"
                    aria-label={`Kill process ${p.pid}`}
                    disabled={!!act.busy}
                    onClick={() =>
                      void act.run('kill', async () => {
                        await capsules.kill(capsuleId, p.pid);
                        await list.refresh();
                      })
                    }
                  >
                    Kill
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </>
  );
}

/** A line chart of values 0..max as SVG. */
function Chart({
  title,
  values,
  max,
  format,
}: {
  title: string;
  values: number[];
  max: number;
  format: (v: number) => string;
}) {
  const W = 480;
  const H = 120;
  const n = 60;
  // Fills from the left, then scrolls: the newest sample is always the last point.
  const pts = values.slice(-n).map((v, i) => `${(i / (n - 1)) * W},${H - (Math.min(v, max) / (max || 1)) * H}`);
  const last = values[values.length - 1];
  return (
    <figure class="chart">
      <figcaption>
        {title}: <strong>{last === undefined ? '—' : format(last)}</strong>{' '}
        <span class="muted">
          (of {format(max)}, last {n} samples)
        </span>
      </figcaption>
      <svg
        viewBox={`0 0 ${W} ${H}`}
        role="img"
        aria-label={`${title} over the last ${values.length} samples`}
        preserveAspectRatio="none"
      >
        <line x1="0" y1={H / 2} x2={W} y2={H / 2} class="grid" />
        {pts.length > 1 && <polyline points={pts.join(' ')} />}
      </svg>
    </figure>
  );
}

function MetricsView({ capsule }: { capsule: Capsule }) {
  const [samples, setSamples] = useState<Metrics[]>([]);
  const [error, setError] = useState<unknown>(undefined);
  useEffect(() => {
    let stop = false;
    const tick = async () => {
      try {
        const m = await capsules.metrics(capsule.id);
        if (!stop) {
          setSamples((s) => [...s.slice(-59), m]);
          setError(undefined);
        }
      } catch (err) {
        if (!stop) setError(err);
      }
    };
    void tick();
    const t = setInterval(() => void tick(), 2000);
    return () => {
      stop = true;
      clearInterval(t);
    };
  }, [capsule.id]);
  const last = samples[samples.length - 1];
  const memMax = last?.mem_total_bytes || capsule.memory_mb * 1048576;
  return (
    <>
      <ErrorNote error={error} />
      <div class="charts">
        <Chart title="CPU" values={samples.map((s) => s.cpu_used_pct)} max={100} format={pct} />
        <Chart title="Memory" values={samples.map((s) => s.mem_used_bytes)} max={memMax} format={bytes} />
      </div>
      {last && (
        <p class="muted">
          {last.pids} processes · disk {bytes(last.disk_used_bytes)} used
          {last.disk_total_bytes > 0 ? ` of ${bytes(last.disk_total_bytes)}` : ''} · {last.cpu_count}{' '}
          {last.cpu_count === 1 ? 'CPU' : 'CPUs'}
        </p>
      )}
    </>
  );
}

/** Listening TCP ports, read from /proc/net/tcp{,6} inside the capsule. */
export function parseListening(procNet: string): number[] {
  const ports = new Set<number>();
  for (const line of procNet.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 4 || f[3] !== '0A') continue;
    const port = Number.parseInt(f[1]?.split(':')[1] ?? '', 16);
    if (port > 0) ports.add(port);
  }
  return [...ports].sort((a, b) => a - b);
}

const ENVD_PORT = 49983;

function PortsView({ capsuleId }: { capsuleId: string }) {
  const list = usePoll(
    () =>
      capsules
        .exec(capsuleId, 'cat /proc/net/tcp /proc/net/tcp6 2>/dev/null')
        .then((r) => parseListening(r.stdout).filter((p) => p !== ENVD_PORT)),
    [capsuleId],
    10_000,
  );
  return (
    <>
      <ErrorNote error={list.error} onRetry={() => void list.refresh()} />
      {list.data && list.data.length === 0 ? (
        <Empty>
          No server listens in this capsule yet. Start one (for example python3 -m http.server 8000) and its URL appears
          here.
        </Empty>
      ) : (
        <ul class="ports">
          {(list.data ?? []).map((p) => {
            const url = `${location.origin}/proxy/${capsuleId}/${p}/`;
            return (
              <li key={p}>
                Port <strong>{p}</strong>:{' '}
                <a href={url} target="_blank" rel="noreferrer">
                  {url}
                </a>
              </li>
            );
          })}
        </ul>
      )}
      <p>
        <button type="button" onClick={() => void list.refresh()} disabled={list.loading}>
          Refresh ports
        </button>
      </p>
      <p class="hint">
        Also reachable at <code>{`<port>-${capsuleId}.<domain>`}</code> and with the headers <code>E2b-Sandbox-Id</code>{' '}
        / <code>E2b-Sandbox-Port</code>.
      </p>
    </>
  );
}

function EventsView({ capsuleId }: { capsuleId: string }) {
  const list = usePoll(() => capsules.events(capsuleId).then((r) => [...r.events].reverse()), [capsuleId], 5000);
  return (
    <>
      <ErrorNote error={list.error} onRetry={() => void list.refresh()} />
      {list.data && list.data.length === 0 ? (
        <Empty>No events recorded.</Empty>
      ) : (
        <ol class="events" aria-label="Lifecycle events, newest first">
          {(list.data ?? []).map((e) => (
            <li key={e.id}>
              <time dateTime={e.created_at}>{new Date(e.created_at).toLocaleString()}</time> <strong>{e.kind}</strong>{' '}
              {Object.keys(e.data).length > 0 && <code class="muted">{JSON.stringify(e.data)}</code>}
            </li>
          ))}
        </ol>
      )}
    </>
  );
}
