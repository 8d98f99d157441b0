// The capsule page's notebook: code cells run in the capsule's code interpreter (templates built on
// code-interpreter-v1) through @wrenn/sdk's CodeInterpreter over the proxy's path form, same-origin.
// Output streams in as it comes: stdout, stderr, rich results (text, HTML, markdown, PNG/JPEG/SVG
// charts) and errors with their traceback. Cells of a language share its default context, so state
// carries from cell to cell. HTML comes from code in the capsule: it is shown in a sandboxed iframe
// (no scripts, an origin of its own), and images only as data: URLs in <img>, never as markup.
import { CodeInterpreter, type ExecutionError, type ExecutionResult } from '@wrenn/sdk';
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import type { Capsule } from '../api.js';
import { Empty, ErrorNote } from '../ui.js';

const LANGUAGES = ['python', 'javascript', 'bash'] as const;
type Language = (typeof LANGUAGES)[number];

type Output =
  | { kind: 'stdout' | 'stderr'; text: string }
  | { kind: 'result'; result: ExecutionResult }
  | { kind: 'error'; error: ExecutionError };

interface Cell {
  key: number;
  code: string;
  language: Language;
  running: boolean;
  outputs: Output[];
  count?: number | undefined;
  /** A failed request (the capsule went away, a timeout), not a failed cell. */
  failure?: unknown;
}

let nextKey = 1;
const newCell = (language: Language = 'python'): Cell => ({
  key: nextKey++,
  code: '',
  language,
  running: false,
  outputs: [],
});

const stripAnsi = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, '');

/** Appends streamed text to the previous output of the same stream (one <pre> per run of lines). */
function appendOutput(outputs: Output[], o: Output): Output[] {
  const last = outputs[outputs.length - 1];
  if ((o.kind === 'stdout' || o.kind === 'stderr') && last?.kind === o.kind)
    return [...outputs.slice(0, -1), { kind: o.kind, text: last.text + o.text }];
  return [...outputs, o];
}

export function NotebookView({ capsule }: { capsule: Capsule }) {
  const ci = useMemo(
    () =>
      new CodeInterpreter({
        url: `${location.origin}/proxy/${capsule.id}/49999`,
        capsuleId: capsule.id,
        accessToken: capsule.envd_access_token,
        trafficAccessToken: capsule.traffic_access_token,
      }),
    [capsule.id, capsule.envd_access_token, capsule.traffic_access_token],
  );
  const [available, setAvailable] = useState<boolean | undefined>(undefined);
  const [probeError, setProbeError] = useState<unknown>(undefined);
  const [cells, setCells] = useState<Cell[]>(() => [newCell()]);
  const editors = useRef(new Map<number, HTMLTextAreaElement>());
  const focusNext = useRef<number | null>(null);

  useEffect(() => {
    let stop = false;
    setAvailable(undefined);
    ci.isAvailable().then(
      (ok) => !stop && setAvailable(ok),
      (err: unknown) => !stop && setProbeError(err),
    );
    return () => {
      stop = true;
    };
  }, [ci]);

  useEffect(() => {
    if (focusNext.current === null) return;
    editors.current.get(focusNext.current)?.focus();
    focusNext.current = null;
  });

  const update = (key: number, fn: (c: Cell) => Cell) => setCells((cs) => cs.map((c) => (c.key === key ? fn(c) : c)));

  const run = async (cell: Cell) => {
    if (cell.running || !cell.code.trim()) return;
    update(cell.key, (c) => ({ ...c, running: true, outputs: [], failure: undefined, count: undefined }));
    // Running the last cell opens a new one below it, as notebooks do.
    setCells((cs) => {
      if (cs[cs.length - 1]?.key !== cell.key) return cs;
      const fresh = newCell(cell.language);
      focusNext.current = fresh.key;
      return [...cs, fresh];
    });
    const push = (o: Output) => update(cell.key, (c) => ({ ...c, outputs: appendOutput(c.outputs, o) }));
    try {
      const ex = await ci.runCode(cell.code, {
        language: cell.language,
        timeoutMs: 0,
        onStdout: (m) => push({ kind: 'stdout', text: m.line }),
        onStderr: (m) => push({ kind: 'stderr', text: m.line }),
        onResult: (r) => push({ kind: 'result', result: r }),
        onError: (e) => push({ kind: 'error', error: e }),
      });
      update(cell.key, (c) => ({ ...c, running: false, count: ex.executionCount }));
    } catch (err) {
      update(cell.key, (c) => ({ ...c, running: false, failure: err }));
    }
  };

  if (probeError) return <ErrorNote error={probeError} />;
  if (available === undefined) return <p class="muted">Looking for the code interpreter…</p>;
  if (!available)
    return (
      <Empty>
        This capsule's template ({capsule.template}) has no code interpreter: nothing answers on port 49999. Create a
        capsule from the code-interpreter-v1 template to run notebook cells here.
      </Empty>
    );
  return (
    <div class="notebook">
      <p class="hint">
        Shift+Enter runs a cell. Cells of one language share their state (the capsule's default context).
      </p>
      {cells.map((cell, i) => (
        <section key={cell.key} class="cell" aria-label={`Cell ${i + 1}`}>
          <div class="cell-bar">
            <span class="mono muted cell-count" title="Execution count">
              [{cell.running ? '*' : (cell.count ?? ' ')}]
            </span>
            <label>
              <span class="sr-only">Language of cell {i + 1}</span>
              <select
                value={cell.language}
                onChange={(e) => update(cell.key, (c) => ({ ...c, language: e.currentTarget.value as Language }))}
              >
                {LANGUAGES.map((l) => (
                  <option key={l} value={l}>
                    {l}
                  </option>
                ))}
              </select>
            </label>
            <button type="button" disabled={cell.running || !cell.code.trim()} onClick={() => void run(cell)}>
              {cell.running ? 'Running…' : 'Run'}
            </button>
            {cells.length > 1 && (
              <button
                type="button"
                class="link"
                disabled={cell.running}
                aria-label={`Remove cell ${i + 1}`}
                onClick={() => setCells((cs) => cs.filter((c) => c.key !== cell.key))}
              >
                Remove
              </button>
            )}
          </div>
          <textarea
            class="mono cell-code"
            aria-label={`Code of cell ${i + 1}`}
            spellcheck={false}
            rows={Math.min(20, Math.max(3, cell.code.split('\n').length + 1))}
            value={cell.code}
            ref={(el) => {
              if (el) editors.current.set(cell.key, el);
              else editors.current.delete(cell.key);
            }}
            onInput={(e) => {
              const code = e.currentTarget.value;
              update(cell.key, (c) => ({ ...c, code }));
            }}
            onKeyDown={(e) => {
              if (e.key === 'Enter' && e.shiftKey) {
                e.preventDefault();
                void run({ ...cell, code: e.currentTarget.value });
              }
            }}
          />
          <div class="cell-output" role="log" aria-live="polite" aria-label={`Output of cell ${i + 1}`}>
            {cell.outputs.map((o, j) => (
              <OutputView key={j} output={o} />
            ))}
            <ErrorNote error={cell.failure} />
          </div>
        </section>
      ))}
      <p>
        <button
          type="button"
          onClick={() => {
            const fresh = newCell(cells[cells.length - 1]?.language);
            focusNext.current = fresh.key;
            setCells((cs) => [...cs, fresh]);
          }}
        >
          Add cell
        </button>
      </p>
    </div>
  );
}

function OutputView({ output: o }: { output: Output }) {
  if (o.kind === 'stdout' || o.kind === 'stderr') return <pre class={`out-${o.kind}`}>{o.text}</pre>;
  if (o.kind === 'error')
    return (
      <pre class="out-error" role="alert">
        {o.error.traceback ? stripAnsi(o.error.traceback) : `${o.error.name}: ${o.error.value}`}
      </pre>
    );
  return o.kind === 'result' ? <ResultView result={o.result} /> : null;
}

/** The richest format a result has that the dashboard can show safely. */
function ResultView({ result: r }: { result: ExecutionResult }) {
  const label = r.chart?.title ? `Chart: ${r.chart.title}` : 'Figure';
  if (r.png) return <img class="out-image" alt={label} src={`data:image/png;base64,${r.png}`} />;
  if (r.jpeg) return <img class="out-image" alt={label} src={`data:image/jpeg;base64,${r.jpeg}`} />;
  if (r.svg)
    return <img class="out-image" alt={label} src={`data:image/svg+xml;charset=utf-8,${encodeURIComponent(r.svg)}`} />;
  if (r.html)
    return (
      <iframe
        class="out-html"
        title="HTML result"
        // No scripts, no same-origin access: markup from the capsule cannot reach the dashboard.
        sandbox=""
        srcdoc={r.html}
      />
    );
  if (r.markdown) return <pre class="out-markdown">{r.markdown}</pre>;
  if (r.text !== undefined) return <pre class="out-text">{r.text}</pre>;
  if (r.json !== undefined) return <pre class="out-text">{JSON.stringify(r.json, null, 2)}</pre>;
  return <p class="muted">A result in a format the dashboard does not show ({Object.keys(r).join(', ')}).</p>;
}
