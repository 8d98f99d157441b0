// The code interpreter of a capsule (templates built on `code-interpreter-v1`): run code in Jupyter-
// style kernels that keep their state, with streamed output, rich results (charts, tables) and
// contexts. It speaks the HTTP protocol of E2B's code-interpreter server on port 49999 (POST
// /execute answered with JSON lines; /contexts), reached through the control plane's sandbox proxy
// (path form /proxy/<id>/49999/), so it works from Node and from a browser page of the control plane.

import {
  CapsuleGoneError,
  ConflictError,
  errorFromResponse,
  InvalidArgumentError,
  NotFoundError,
  PermissionDeniedError,
  TimeoutError,
  WrennError,
} from './errors.js';

/** The port of the code-interpreter server in the capsule (E2B's JUPYTER_PORT). */
export const CODE_INTERPRETER_PORT = 49999;

/** A line of output, as it was streamed. */
export interface OutputMessage {
  line: string;
  /** When the kernel produced it, in ms since the epoch (0 when the server gave no time). */
  timestamp: number;
  error: boolean;
}

/** A chart the kernel extracted from a matplotlib figure (E2B's shape: type, title, elements, ...). */
export type ChartData = Record<string, unknown> & { type: string; title?: string | null; elements?: unknown[] };

/** One rich result of a cell: each format the kernel gave for it (text, html, png as base64, ...). */
export interface ExecutionResult {
  /** The value of the cell's last expression (a display() or a figure is not). */
  isMainResult: boolean;
  text?: string;
  html?: string;
  markdown?: string;
  /** SVG markup. */
  svg?: string;
  /** Base64 PNG. */
  png?: string;
  /** Base64 JPEG. */
  jpeg?: string;
  /** Base64 PDF. */
  pdf?: string;
  latex?: string;
  json?: unknown;
  javascript?: string;
  /** A DataFrame's columns ({column: values}). */
  data?: unknown;
  chart?: ChartData;
  /** Formats without a field of their own, by MIME type. */
  extra?: Record<string, unknown>;
}

/** An exception the code raised (a failed cell, not a failed request). */
export interface ExecutionError {
  name: string;
  value: string;
  /** The kernel's traceback (Python's carries ANSI colours, as Jupyter prints it). */
  traceback: string;
}

/** What a cell produced. */
export class Execution {
  readonly logs: { stdout: string[]; stderr: string[] } = { stdout: [], stderr: [] };
  readonly results: ExecutionResult[] = [];
  error: ExecutionError | undefined;
  /** The kernel's execution counter after this cell. */
  executionCount: number | undefined;

  /** The text of the main result (the cell's last expression), if any. */
  get text(): string | undefined {
    return this.results.find((r) => r.isMainResult)?.text;
  }
}

/** A kernel with its own state, language and working directory. */
export interface CodeContext {
  id: string;
  language: string;
  cwd: string;
}

export interface RunCodeOptions {
  /** `python` (default), `javascript`/`js`, `bash`, ... (what the template has kernels for). Not with `context`. */
  language?: string;
  /** Run in this context (from createCodeContext) instead of the language's default one. */
  context?: CodeContext | string;
  /** Environment variables for this cell only. */
  envs?: Record<string, string>;
  /**
   * Run in a context with this working directory: one is created for the language and this
   * directory on first use and reused by this handle afterwards (its state persists). Not with `context`.
   */
  cwd?: string;
  /** Give up after this many ms (default 60 000; 0 = never): the cell is interrupted and a TimeoutError thrown. */
  timeoutMs?: number;
  /** Cancels the run (the server interrupts the cell when the connection goes). */
  signal?: AbortSignal;
  onStdout?: (msg: OutputMessage) => void;
  onStderr?: (msg: OutputMessage) => void;
  onResult?: (result: ExecutionResult) => void;
  onError?: (error: ExecutionError) => void;
}

export interface CreateCodeContextOptions {
  /** Default `python`. */
  language?: string;
  /** Absolute path; default the server's (the template user's home). */
  cwd?: string;
}

export interface CodeInterpreterOptions {
  /** Base URL of the server through the proxy, e.g. `http://host:8000/proxy/<id>/49999` or `/proxy/<id>/49999` in a page. */
  url: string;
  /** The capsule id (named in errors). */
  capsuleId: string;
  /** The capsule's envd access token, sent as X-Access-Token as E2B's SDK does (the server reads the capsule's env with it). */
  accessToken?: string | null;
  /** The capsule's traffic access token (a capsule created with `network.allowPublicTraffic: false`), sent as e2b-traffic-access-token. */
  trafficAccessToken?: string | null;
  /** Timeout of the context calls in ms (default 60 000; 0 = none). */
  requestTimeoutMs?: number;
}

/** One line of the server's stream (snake_case, as the protocol has it). */
interface WireLine {
  type: string;
  text?: string;
  timestamp?: number | string;
  name?: string;
  value?: string;
  traceback?: string;
  execution_count?: number;
  is_main_result?: boolean;
  [format: string]: unknown;
}

const RESULT_FORMATS = [
  'text',
  'html',
  'markdown',
  'svg',
  'png',
  'jpeg',
  'pdf',
  'latex',
  'json',
  'javascript',
  'data',
  'chart',
  'extra',
] as const;

function resultOf(line: WireLine): ExecutionResult {
  const out: Record<string, unknown> = { isMainResult: line.is_main_result === true };
  for (const f of RESULT_FORMATS) if (line[f] !== undefined && line[f] !== null) out[f] = line[f];
  return out as unknown as ExecutionResult;
}

const contextId = (c: CodeContext | string): string => (typeof c === 'string' ? c : c.id);

/** The client of one capsule's code-interpreter server (Capsule.runCode and friends use it). */
export class CodeInterpreter {
  private readonly url: string;
  private readonly capsuleId: string;
  private readonly accessToken: string | null | undefined;
  private readonly trafficAccessToken: string | null | undefined;
  private readonly requestTimeoutMs: number;
  /** Contexts made for runCode's `cwd` option, by language and directory. */
  private readonly cwdContexts = new Map<string, Promise<CodeContext>>();

  constructor(o: CodeInterpreterOptions) {
    this.url = o.url.replace(/\/+$/, '');
    this.capsuleId = o.capsuleId;
    this.accessToken = o.accessToken;
    this.trafficAccessToken = o.trafficAccessToken;
    this.requestTimeoutMs = o.requestTimeoutMs ?? 60_000;
  }

  /** Runs code and returns what it produced; callbacks see each piece as it is streamed. */
  async runCode(code: string, opts: RunCodeOptions = {}): Promise<Execution> {
    if (typeof code !== 'string') throw new InvalidArgumentError('code must be a string', { code: 'invalid_argument' });
    if (opts.context !== undefined && (opts.language !== undefined || opts.cwd !== undefined))
      throw new InvalidArgumentError('give either context or language/cwd, not both', { code: 'invalid_argument' });
    checkEnvs(opts.envs);
    let context = opts.context;
    if (opts.cwd !== undefined) context = await this.contextForCwd(opts.language ?? 'python', opts.cwd);
    const body = {
      code,
      ...(context !== undefined ? { context_id: contextId(context) } : {}),
      ...(context === undefined && opts.language !== undefined ? { language: opts.language } : {}),
      ...(opts.envs !== undefined ? { env_vars: opts.envs } : {}),
    };
    const timeoutMs = opts.timeoutMs ?? 60_000;
    const res = await this.request('POST', '/execute', body, timeoutMs, opts.signal, 'runCode');
    const execution = new Execution();
    let ended = false;
    try {
      await readLines(res, (line) => {
        if (line.type === 'end_of_execution') ended = true;
        apply(execution, line, opts);
      });
    } catch (err) {
      throw this.transportError(err, 'runCode', timeoutMs);
    }
    // A stream cut short (the capsule or its server went away mid-cell) is not a finished cell.
    if (!ended)
      throw new WrennError(
        `runCode: capsule ${this.capsuleId}'s code interpreter stopped answering before the cell ended`,
        {
          code: 'connection_lost',
        },
      );
    return execution;
  }

  async createCodeContext(opts: CreateCodeContextOptions = {}): Promise<CodeContext> {
    if (opts.cwd !== undefined && !opts.cwd.startsWith('/'))
      throw new InvalidArgumentError(`cwd must be an absolute path, got "${opts.cwd}"`, { code: 'invalid_argument' });
    const res = await this.request('POST', '/contexts', {
      ...(opts.language !== undefined ? { language: opts.language } : {}),
      ...(opts.cwd !== undefined ? { cwd: opts.cwd } : {}),
    });
    return contextOf(await res.json());
  }

  async listCodeContexts(): Promise<CodeContext[]> {
    const res = await this.request('GET', '/contexts');
    const list = (await res.json()) as unknown;
    return Array.isArray(list) ? list.map(contextOf) : [];
  }

  /** Restarts the context's kernel: its state is gone, its id, language and cwd stay. */
  async restartCodeContext(context: CodeContext | string): Promise<void> {
    await this.request('POST', `/contexts/${encodeURIComponent(contextId(context))}/restart`);
  }

  async removeCodeContext(context: CodeContext | string): Promise<void> {
    const id = contextId(context);
    await this.request('DELETE', `/contexts/${encodeURIComponent(id)}`);
    for (const [k, v] of this.cwdContexts) if ((await v.catch(() => undefined))?.id === id) this.cwdContexts.delete(k);
  }

  /** Whether the capsule's code-interpreter server answers (false when its template has none). */
  async isAvailable(): Promise<boolean> {
    try {
      await this.request('GET', '/health');
      return true;
    } catch (err) {
      if (err instanceof ConflictError && err.code === 'no_code_interpreter') return false;
      throw err;
    }
  }

  private contextForCwd(language: string, cwd: string): Promise<CodeContext> {
    const key = `${language}\0${cwd}`;
    let ctx = this.cwdContexts.get(key);
    if (!ctx) {
      ctx = this.createCodeContext({ language, cwd });
      this.cwdContexts.set(key, ctx);
      ctx.catch(() => this.cwdContexts.delete(key));
    }
    return ctx;
  }

  /** One request to the server; error answers become typed errors. */
  private async request(
    method: string,
    path: string,
    json?: unknown,
    timeoutMs = this.requestTimeoutMs,
    signal?: AbortSignal,
    what = `${method} ${path}`,
  ): Promise<Response> {
    const headers: Record<string, string> = {};
    if (this.accessToken) headers['x-access-token'] = this.accessToken;
    if (this.trafficAccessToken) headers['e2b-traffic-access-token'] = this.trafficAccessToken;
    if (json !== undefined) headers['content-type'] = 'application/json';
    const signals: AbortSignal[] = [];
    if (signal) signals.push(signal);
    if (timeoutMs > 0) signals.push(AbortSignal.timeout(timeoutMs));
    const init: RequestInit = { method, headers };
    if (json !== undefined) init.body = JSON.stringify(json);
    if (signals.length > 0) init.signal = signals.length === 1 ? signals[0]! : AbortSignal.any(signals);
    let res: Response;
    try {
      res = await fetch(this.url + path, init);
    } catch (err) {
      throw this.transportError(err, what, timeoutMs);
    }
    if (!res.ok) throw await this.failure(res, what);
    return res;
  }

  private async failure(res: Response, what: string): Promise<WrennError> {
    const text = await res.text().catch(() => '');
    let body: Record<string, unknown> | null = null;
    try {
      const parsed = text ? (JSON.parse(text) as unknown) : null;
      if (parsed && typeof parsed === 'object') body = parsed as Record<string, unknown>;
    } catch {
      // the server answers its own refusals as plain text
    }
    const status = res.status;
    // The sandbox proxy's refusals (E2B's shape: {sandboxId, message, port?, code}).
    if (body && typeof body.message === 'string' && body.code === status) {
      const detail = typeof body.detail === 'string' ? body.detail : '';
      if (status === 502 && body.port !== undefined)
        return new ConflictError(
          `capsule ${this.capsuleId} has no code interpreter answering on port ${CODE_INTERPRETER_PORT} (is its template code-interpreter-v1?)${detail ? `: ${detail}` : ''}`,
          { status, code: 'no_code_interpreter' },
        );
      if (status === 403)
        return new PermissionDeniedError(`${what}: ${body.message}`, { status, code: 'traffic_token_refused' });
      if (status === 502)
        return new CapsuleGoneError(
          `${what}: capsule ${this.capsuleId} is not running${detail ? ` (${detail})` : ''}`,
          {
            status,
            code: 'capsule_not_running',
          },
        );
    }
    if (body && 'error' in body) return errorFromResponse(status, body, `${what} failed with HTTP ${status}`);
    const message = `${what}: ${text.trim().slice(0, 500) || `HTTP ${status}`}`;
    if (status === 404) return new NotFoundError(message, { status, code: 'not_found' });
    if (status === 400) return new InvalidArgumentError(message, { status, code: 'invalid_argument' });
    return new WrennError(message, { status, code: `http_${status}` });
  }

  private transportError(err: unknown, what: string, timeoutMs: number): WrennError {
    if (err instanceof WrennError) return err;
    const name = (err as { name?: string })?.name;
    if (name === 'TimeoutError')
      return new TimeoutError(`${what} did not finish within ${timeoutMs} ms (the cell was interrupted)`, {
        code: 'timeout',
        cause: err,
      });
    if (name === 'AbortError') return new WrennError(`${what} was aborted`, { code: 'aborted', cause: err });
    return new WrennError(
      `${what}: the connection to capsule ${this.capsuleId}'s code interpreter failed (${(err as Error)?.message ?? String(err)})`,
      { code: 'connection_lost', cause: err },
    );
  }
}

function checkEnvs(envs: unknown): void {
  if (envs === undefined) return;
  if (typeof envs !== 'object' || envs === null || Array.isArray(envs))
    throw new InvalidArgumentError('envs must be an object of strings', { code: 'invalid_argument' });
  for (const [k, v] of Object.entries(envs))
    if (!k || k.includes('=') || typeof v !== 'string')
      throw new InvalidArgumentError(`env var ${JSON.stringify(k)} must have a name without "=" and a string value`, {
        code: 'invalid_argument',
      });
}

function contextOf(j: unknown): CodeContext {
  const o = (j ?? {}) as Record<string, unknown>;
  if (typeof o.id !== 'string') throw new WrennError('the code interpreter answered a context without an id');
  return { id: o.id, language: String(o.language ?? ''), cwd: String(o.cwd ?? '') };
}

/** A streamed line's time as ms since the epoch: an ISO date, or a number in ns, µs or ms (E2B documents ns). */
function epochMs(t: unknown): number {
  if (typeof t === 'string') {
    const ms = Date.parse(t);
    return Number.isFinite(ms) ? ms : 0;
  }
  if (typeof t !== 'number' || !Number.isFinite(t) || t <= 0) return 0;
  return t > 1e17 ? t / 1e6 : t > 1e14 ? t / 1e3 : t;
}

/** Folds one streamed line into the execution and calls the matching callback. */
function apply(execution: Execution, line: WireLine, opts: RunCodeOptions): void {
  switch (line.type) {
    case 'stdout':
    case 'stderr': {
      const msg: OutputMessage = {
        line: String(line.text ?? ''),
        timestamp: epochMs(line.timestamp),
        error: line.type === 'stderr',
      };
      execution.logs[line.type].push(msg.line);
      (line.type === 'stdout' ? opts.onStdout : opts.onStderr)?.(msg);
      return;
    }
    case 'result': {
      const r = resultOf(line);
      execution.results.push(r);
      opts.onResult?.(r);
      return;
    }
    case 'error': {
      const e = {
        name: String(line.name ?? ''),
        value: String(line.value ?? ''),
        traceback: String(line.traceback ?? ''),
      };
      execution.error = e;
      opts.onError?.(e);
      return;
    }
    case 'number_of_executions':
      if (typeof line.execution_count === 'number') execution.executionCount = line.execution_count;
      return;
    default:
      // end_of_execution, keepalive and anything newer: nothing to keep.
      return;
  }
}

/** Reads a JSON-lines body, line by line, until it ends. */
async function readLines(res: Response, onLine: (line: WireLine) => void): Promise<void> {
  if (!res.body) return;
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buffered = '';
  const take = (text: string) => {
    const trimmed = text.trim();
    if (!trimmed) return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(trimmed);
    } catch {
      throw new WrennError(`the code interpreter sent a line that is not JSON: ${trimmed.slice(0, 200)}`);
    }
    if (parsed && typeof parsed === 'object' && typeof (parsed as WireLine).type === 'string')
      onLine(parsed as WireLine);
  };
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    buffered += decoder.decode(value, { stream: true });
    let nl = buffered.indexOf('\n');
    while (nl >= 0) {
      take(buffered.slice(0, nl));
      buffered = buffered.slice(nl + 1);
      nl = buffered.indexOf('\n');
    }
  }
  take(buffered + decoder.decode());
}
