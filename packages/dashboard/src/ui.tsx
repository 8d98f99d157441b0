// Shared pieces: links, notices, confirmation dialogs, polling.
import type { ComponentChildren } from 'preact';
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { linkClick } from './router.js';

export function Link(p: {
  href: string;
  children: ComponentChildren;
  class?: string;
  'aria-current'?: 'page' | undefined;
}) {
  return (
    <a href={p.href} class={p.class} onClick={linkClick} aria-current={p['aria-current']}>
      {p.children}
    </a>
  );
}

export function ErrorNote({ error, onRetry }: { error: unknown; onRetry?: () => void }) {
  if (!error) return null;
  return (
    <div class="notice error" role="alert">
      <strong>Something went wrong:</strong> {(error as Error).message ?? String(error)}
      {onRetry && (
        <button type="button" class="link" onClick={onRetry}>
          Try again
        </button>
      )}
    </div>
  );
}

export function Empty({ children }: { children: ComponentChildren }) {
  return <p class="empty">{children}</p>;
}

export function StateBadge({ state }: { state: string }) {
  return <span class={`badge s-${state}`}>{state}</span>;
}

/** Data loaded by `load`, refreshed every `everyMs` (if given) while the page is visible. */
export function usePoll<T>(load: (signal: AbortSignal) => Promise<T>, deps: unknown[], everyMs?: number) {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<unknown>(undefined);
  const [loading, setLoading] = useState(true);
  const gen = useRef(0);
  const refresh = useCallback(async () => {
    const mine = ++gen.current;
    const ctl = new AbortController();
    try {
      const v = await load(ctl.signal);
      if (mine === gen.current) {
        setData(v);
        setError(undefined);
      }
    } catch (err) {
      if (mine === gen.current && (err as Error).name !== 'AbortError') setError(err);
    } finally {
      if (mine === gen.current) setLoading(false);
    }
  }, deps);
  useEffect(() => {
    setLoading(true);
    void refresh();
    if (!everyMs) return;
    const t = setInterval(() => {
      if (document.visibilityState === 'visible') void refresh();
    }, everyMs);
    return () => {
      clearInterval(t);
      gen.current++;
    };
  }, [refresh, everyMs]);
  return { data, error, loading, refresh, setData };
}

/** A modal <dialog> (focus is kept inside it by the browser; Escape closes it). */
export function Modal(p: { title: string; open: boolean; onClose: () => void; children: ComponentChildren }) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (p.open && !d.open) d.showModal();
    if (!p.open && d.open) d.close();
  }, [p.open]);
  return (
    <dialog ref={ref} aria-labelledby="modal-title" onClose={p.onClose} onCancel={p.onClose}>
      {p.open && (
        <>
          <header class="modal-head">
            <h2 id="modal-title">{p.title}</h2>
            <button type="button" class="icon" aria-label="Close" onClick={p.onClose}>
              ×
            </button>
          </header>
          {p.children}
        </>
      )}
    </dialog>
  );
}

/** Runs an action with a busy flag and an error, for buttons. */
export function useAction() {
  const [busy, setBusy] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(undefined);
  const run = useCallback(async (label: string, fn: () => Promise<unknown>) => {
    setBusy(label);
    setError(undefined);
    try {
      await fn();
      return true;
    } catch (err) {
      setError(err);
      return false;
    } finally {
      setBusy(null);
    }
  }, []);
  return { busy, error, run, setError };
}

/** Asks before a destructive action. */
export function Confirm(p: {
  open: boolean;
  title: string;
  body: ComponentChildren;
  confirmLabel: string;
  onConfirm: () => void;
  onClose: () => void;
}) {
  return (
    <Modal title={p.title} open={p.open} onClose={p.onClose}>
      <p>{p.body}</p>
      <div class="actions">
        <button type="button" onClick={p.onClose}>
          Cancel
        </button>
        <button
          type="button"
          class="danger"
          onClick={() => {
            p.onConfirm();
            p.onClose();
          }}
        >
          {p.confirmLabel}
        </button>
      </div>
    </Modal>
  );
}

/** A table's header row: a column head per name (false leaves one out), then an unlabelled actions column. */
export function TableHead({ columns, actions = false }: { columns: (string | false)[]; actions?: boolean }) {
  return (
    <thead>
      <tr>
        {columns
          .filter((c): c is string => c !== false)
          .map((c) => (
            <th scope="col" key={c}>
              {c}
            </th>
          ))}
        {actions && (
          <th scope="col">
            <span class="sr-only">Actions</span>
          </th>
        )}
      </tr>
    </thead>
  );
}
