// Jupyter's messaging wire format (protocol 5.3): a message is the frames
// [<IDS|MSG>, hmac, header, parent_header, metadata, content, ...buffers], signed with
// HMAC-SHA256 of the four JSON frames under the connection file's key.
import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto';

const DELIMITER = '<IDS|MSG>';

export interface JupyterMessage {
  header: { msg_id: string; msg_type: string; session?: string; date?: string; [k: string]: unknown };
  parent_header: { msg_id?: string; [k: string]: unknown };
  metadata: Record<string, unknown>;
  content: Record<string, unknown>;
}

export class JupyterWire {
  readonly session = randomUUID();

  constructor(private readonly key: string) {}

  private sign(frames: (string | Buffer)[]): string {
    const hmac = createHmac('sha256', this.key);
    for (const f of frames) hmac.update(f);
    return hmac.digest('hex');
  }

  /** A new request's frames and its msg_id. */
  request(msgType: string, content: Record<string, unknown>): { msgId: string; frames: string[] } {
    const msgId = randomUUID();
    const header = JSON.stringify({
      msg_id: msgId,
      msg_type: msgType,
      session: this.session,
      username: 'wrenn',
      date: new Date().toISOString(),
      version: '5.3',
    });
    const parts = [header, '{}', '{}', JSON.stringify(content)];
    return { msgId, frames: [DELIMITER, this.sign(parts), ...parts] };
  }

  /** A received message, or undefined when it is malformed or its signature is wrong. */
  parse(frames: Buffer[]): JupyterMessage | undefined {
    const at = frames.findIndex((f) => f.length === DELIMITER.length && f.toString() === DELIMITER);
    const parts = frames.slice(at + 2, at + 6);
    const signature = frames[at + 1];
    if (at < 0 || parts.length !== 4 || !signature) return undefined;
    const expected = Buffer.from(this.sign(parts));
    if (signature.length !== expected.length || !timingSafeEqual(signature, expected)) return undefined;
    try {
      const [header, parent, metadata, content] = parts.map((p) => JSON.parse(p.toString()));
      return { header, parent_header: parent, metadata, content };
    } catch {
      return undefined;
    }
  }
}
