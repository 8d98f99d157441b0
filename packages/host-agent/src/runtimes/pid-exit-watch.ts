// Tells the agent the moment a process it did not start itself ends: a namespace capsule's init
// (the `wrenn-nsinit start` helper's child) or a VMM that daemonized (QEMU) or was re-adopted after
// an agent restart. A pidfd polled by the event loop (@wrenn/native watchExit): no timer per capsule.
import { native } from '@wrenn/native';

/**
 * Calls onExit once when `pid` has exited, or at once when it is already gone or `isOurs()` says the
 * pid now names another process. Returns the function that stops watching (onExit never fires after).
 */
export function watchPidExit(pid: number, isOurs: () => boolean, onExit: () => void): () => void {
  let fired = false;
  const fire = () => {
    if (fired) return;
    fired = true;
    onExit();
  };
  if (!(pid > 0)) return () => undefined;
  const id = native().watchExit(pid, fire);
  // Checked after the pidfd is open: if the pid still names our process now, the pidfd is of it.
  if (id < 0 || !isOurs()) {
    if (id > 0) native().unwatchExit(id);
    queueMicrotask(fire);
    return () => undefined;
  }
  return () => {
    fired = true;
    native().unwatchExit(id);
  };
}
