// A host that cannot hold another capsule (free disk space, memory, task ids, file tables, network
// slots, uid ranges, the configured maximum): a resource_exhausted domain error, so the agent's
// service answers resource_exhausted rather than a bare internal error: the caller can try another
// host or later, and nothing is wrong with its request. `resource` names the limit that is full.
import { ResourceExhaustedError } from '@wrenn/protocol';

export class HostCapacityError extends ResourceExhaustedError {
  override name = 'HostCapacityError';
  constructor(
    message: string,
    readonly resource = 'disk',
  ) {
    super(message);
  }
}
