// The template switches that open parts of the capsule seccomp filter (seccomp-policy.c), as
// wrenn-nsinit's --seccomp-allow words. Everything else about the filter lives in the C policy.
import type { CapsuleFeatures } from '../../rootfs/manifest.js';

export type SeccompSwitch = 'userns' | 'perf';

/** The template's switches as wrenn-nsinit's --seccomp-allow words. */
export function seccompAllowOf(features: CapsuleFeatures): SeccompSwitch[] {
  return [
    ...(features.nestedUserNamespaces ? (['userns'] as const) : []),
    ...(features.perfEvents ? (['perf'] as const) : []),
  ];
}

/** --seccomp-allow for wrenn-nsinit start/exec ("none" keeps the strict default). */
export function seccompAllowArg(s: { seccompAllow?: readonly SeccompSwitch[] }): string {
  return s.seccompAllow?.length ? s.seccompAllow.join(',') : 'none';
}
