// The answers of the sandbox proxies (the control plane's and the agent's port proxy) when they
// cannot reach what a request asked for, in E2B's shape: `{sandboxId?, message, port?, code}` with
// the HTTP status as `code`. The e2b SDK reads a 502 on envd's port as "the sandbox is not running"
// (`isRunning()` false, TimeoutError on calls), so an unknown, paused or stopped capsule is a 502
// with E2B's exact message; `detail` says what Wrenn knows beyond it.

export interface GuestFailure {
  status: number;
  message: string;
  sandboxId?: string;
  port?: number;
  /** Wrenn's own explanation (the state, the dial error); E2B clients ignore it. */
  detail?: string;
}

export const SANDBOX_NOT_FOUND = 'The sandbox was not found';
export const PORT_NOT_OPEN = 'The sandbox is running but port is not open';

export function sandboxNotFound(sandboxId: string, detail: string): GuestFailure {
  return { status: 502, message: SANDBOX_NOT_FOUND, sandboxId: sandboxId.slice(0, 80), detail };
}

export function portNotOpen(sandboxId: string | undefined, port: number, detail: string): GuestFailure {
  return { status: 502, message: PORT_NOT_OPEN, ...(sandboxId ? { sandboxId } : {}), port, detail };
}

/** The JSON body of a failure. */
export function guestErrorBody(f: GuestFailure): string {
  return JSON.stringify({
    ...(f.sandboxId !== undefined ? { sandboxId: f.sandboxId } : {}),
    message: f.message,
    ...(f.port !== undefined ? { port: f.port } : {}),
    code: f.status,
    ...(f.detail ? { detail: f.detail } : {}),
  });
}

/** A whole HTTP/1.1 response for a raw socket (upgrades, the piped path); the connection closes after it. */
export function guestErrorResponse(f: GuestFailure, statusText: string): string {
  const body = guestErrorBody(f);
  return (
    `HTTP/1.1 ${f.status} ${statusText}\r\ncontent-type: application/json\r\n` +
    `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`
  );
}

/** Answers `res` with the failure (a stream already answering is cut instead). */
export function sendGuestError(res: import('node:http').ServerResponse, f: GuestFailure): void {
  if (res.headersSent) return void res.destroy();
  const body = guestErrorBody(f);
  res.writeHead(f.status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/** Any other refusal (bad port or path, framing, timeouts, an internal error): E2B's shape. */
export function proxyFailure(status: number, message: string, sandboxId?: string): GuestFailure {
  return { status, message, ...(sandboxId ? { sandboxId: sandboxId.slice(0, 80) } : {}) };
}
