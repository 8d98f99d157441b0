// The live list of capsules: filters, pages of 50 (fast with thousands), live CPU/memory for the
// running capsules on the page shown, and the lifecycle actions.
import { useEffect, useMemo, useState } from 'preact/hooks';
import { type Capsule, capsules, listCapsules, type Metrics } from '../api.js';
import { ago, bytes, pct } from '../format.js';
import { navigate } from '../router.js';
import { Empty, ErrorNote, Link, StateBadge, TableHead, usePoll } from '../ui.js';
import { CapsuleActions } from './capsule-actions.js';
import { CreateCapsuleDialog } from './create-capsule.js';

const PAGE = 50;
const STATES = ['all', 'starting', 'running', 'paused', 'hibernated', 'error'] as const;

/** Live metrics of the given running capsules, a few requests at a time. */
function useRowMetrics(ids: string[]): Map<string, Metrics> {
  const [m, setM] = useState(new Map<string, Metrics>());
  const key = ids.join(',');
  useEffect(() => {
    let stop = false;
    const ctl = new AbortController();
    const tick = async () => {
      const queue = [...ids];
      const next = new Map<string, Metrics>();
      const worker = async () => {
        for (let id = queue.shift(); id && !stop; id = queue.shift()) {
          try {
            next.set(id, await capsules.metrics(id, ctl.signal));
          } catch {
            // paused meanwhile or not answering: left blank
          }
        }
      };
      await Promise.all([worker(), worker(), worker(), worker()]);
      if (!stop) setM(next);
    };
    void tick();
    const t = setInterval(() => document.visibilityState === 'visible' && void tick(), 5000);
    return () => {
      stop = true;
      ctl.abort();
      clearInterval(t);
    };
  }, [key]);
  return m;
}

export function CapsulesPage() {
  const list = usePoll((s) => listCapsules(s), [], 3000);
  const [state, setState] = useState<(typeof STATES)[number]>('all');
  const [template, setTemplate] = useState('all');
  const [q, setQ] = useState('');
  const [page, setPage] = useState(0);
  const [creating, setCreating] = useState(false);
  const all = list.data ?? [];
  const templateNames = useMemo(() => [...new Set(all.map((c) => c.template))].sort(), [all]);
  const filtered = useMemo(() => {
    const needle = q.trim().toLowerCase();
    return all.filter(
      (c) =>
        (state === 'all' || c.state === state) &&
        (template === 'all' || c.template === template) &&
        (!needle ||
          c.id.includes(needle) ||
          (c.name ?? '').toLowerCase().includes(needle) ||
          (c.host_id ?? '').toLowerCase().includes(needle) ||
          Object.entries(c.metadata).some(([k, v]) => `${k}=${v}`.toLowerCase().includes(needle))),
    );
  }, [all, state, template, q]);
  const pages = Math.max(1, Math.ceil(filtered.length / PAGE));
  const current = Math.min(page, pages - 1);
  const rows = filtered.slice(current * PAGE, current * PAGE + PAGE);
  const metrics = useRowMetrics(rows.filter((c) => c.state === 'running').map((c) => c.id));
  useEffect(() => setPage(0), [state, template, q]);
  const replace = (c?: Capsule) => {
    if (c && list.data) list.setData(list.data.map((x) => (x.id === c.id ? c : x)));
    void list.refresh();
  };
  const now = Date.now();
  const counts = useMemo(() => {
    const m = new Map<string, number>();
    for (const c of all) m.set(c.state, (m.get(c.state) ?? 0) + 1);
    return m;
  }, [all]);

  return (
    <section aria-labelledby="capsules-title">
      <div class="page-head">
        <h1 id="capsules-title">Capsules</h1>
        <button type="button" class="primary" onClick={() => setCreating(true)}>
          New capsule
        </button>
      </div>
      <form class="filters" onSubmit={(e) => e.preventDefault()}>
        <label>
          State
          <select value={state} onChange={(e) => setState((e.target as HTMLSelectElement).value as typeof state)}>
            {STATES.map((s) => (
              <option key={s} value={s}>
                {s === 'all' ? 'all but stopped' : `${s} (${counts.get(s) ?? 0})`}
              </option>
            ))}
          </select>
        </label>
        <label>
          Template
          <select value={template} onChange={(e) => setTemplate((e.target as HTMLSelectElement).value)}>
            <option value="all">all</option>
            {templateNames.map((t) => (
              <option key={t} value={t}>
                {t}
              </option>
            ))}
          </select>
        </label>
        <label class="grow">
          Search
          <input
            type="search"
            placeholder="id, name, host or metadata key=value"
            value={q}
            onInput={(e) => setQ((e.target as HTMLInputElement).value)}
          />
        </label>
      </form>
      <ErrorNote error={list.error} onRetry={() => void list.refresh()} />
      <p class="muted" aria-live="polite">
        {list.loading && !list.data ? 'Loading capsules…' : `${filtered.length} of ${all.length} capsules`}
      </p>
      {list.data && all.length === 0 ? (
        <Empty>
          No capsules yet.{' '}
          <button type="button" class="link" onClick={() => setCreating(true)}>
            Create one
          </button>{' '}
          to get an isolated Linux machine in under a second.
        </Empty>
      ) : list.data && filtered.length === 0 ? (
        <Empty>No capsule matches these filters.</Empty>
      ) : rows.length > 0 ? (
        <div class="table-wrap">
          <table class="capsules">
            <caption class="sr-only">Capsules, newest first</caption>
            <TableHead columns={['Capsule', 'State', 'Template', 'Runtime', 'Host', 'Age', 'CPU', 'Memory']} actions />
            <tbody>
              {rows.map((c) => {
                const m = metrics.get(c.id);
                return (
                  <tr key={c.id}>
                    <th scope="row">
                      <Link href={`/capsules/${c.id}`}>{c.id}</Link>
                      {c.name && <div class="meta">{c.name}</div>}
                      {Object.keys(c.metadata).length > 0 && (
                        <div class="meta">
                          {Object.entries(c.metadata)
                            .slice(0, 3)
                            .map(([k, v]) => (
                              <span key={k} class="tag">
                                {k}={v}
                              </span>
                            ))}
                        </div>
                      )}
                    </th>
                    <td>
                      <StateBadge state={c.state} />
                    </td>
                    <td>{c.template}</td>
                    <td>{c.runtime}</td>
                    <td class="mono">{c.host_id ?? '—'}</td>
                    <td title={c.created_at}>{ago(c.created_at, now)}</td>
                    <td>{m ? `${pct(m.cpu_used_pct)} of ${c.vcpus}` : `${c.vcpus} vCPU`}</td>
                    <td>
                      {m
                        ? `${bytes(m.mem_used_bytes)} / ${bytes(m.mem_total_bytes || c.memory_mb * 1048576)}`
                        : `${c.memory_mb} MiB`}
                    </td>
                    <td>
                      <CapsuleActions capsule={c} onChange={replace} />
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      ) : null}
      {pages > 1 && (
        <nav class="pager" aria-label="Pages of capsules">
          <button type="button" disabled={current === 0} onClick={() => setPage(current - 1)}>
            Previous
          </button>
          <span aria-live="polite">
            Page {current + 1} of {pages}
          </span>
          <button type="button" disabled={current >= pages - 1} onClick={() => setPage(current + 1)}>
            Next
          </button>
        </nav>
      )}
      <CreateCapsuleDialog
        open={creating}
        onClose={() => setCreating(false)}
        onCreated={(c) => {
          setCreating(false);
          navigate(`/capsules/${c.id}`);
        }}
      />
    </section>
  );
}
