// JSON messages and error closes on the native API's WebSockets (exec, PTY, commands, watch).
import type { RawData, WebSocket } from 'ws';
import { toApiError } from '../errors.js';

export const sendJson = (ws: WebSocket, v: unknown): void => {
  if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(v));
};

/** Sends the error as a JSON message, then closes: 1008 (policy) for bad input, 1011 for server faults. */
export function closeWithError(ws: WebSocket, err: unknown): void {
  const e = toApiError(err);
  sendJson(ws, { type: 'error', error: { code: e.code, message: e.message } });
  if (ws.readyState === ws.OPEN) ws.close(e.status < 500 ? 1008 : 1011, e.code.slice(0, 100));
}

export const toBuffer = (d: RawData): Buffer =>
  Buffer.isBuffer(d) ? d : Array.isArray(d) ? Buffer.concat(d) : Buffer.from(d);
