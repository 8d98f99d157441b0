// Aborts work for a request whose client went away. Watches the socket, not the request: a
// request's own 'close' fires as soon as its body has been read, long before the reply.
import type { FastifyRequest } from 'fastify';

export function abortOnDisconnect(req: FastifyRequest): { signal: AbortSignal; done(): void } {
  const ac = new AbortController();
  let finished = false;
  const socket = req.raw.socket;
  const onClose = () => {
    if (!finished) ac.abort();
  };
  socket.once('close', onClose);
  return {
    signal: ac.signal,
    done() {
      finished = true;
      socket.off('close', onClose);
    },
  };
}
