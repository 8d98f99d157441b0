// A host that cannot hold what a capsule would be promised (free disk space, for now). Its own class
// so that the agent's service answers resource_exhausted (the API's 507) rather than a bare internal
// error: the caller can try another host or later, and nothing is wrong with its request.
export class HostCapacityError extends Error {
  override name = 'HostCapacityError';
}
