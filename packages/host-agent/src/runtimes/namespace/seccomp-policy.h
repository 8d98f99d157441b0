/*
 * The seccomp filter every process of a namespace capsule runs under (seccomp-policy.c).
 * Built on the host before the capsule's init drops into its namespaces, installed by the init
 * (PID 1 inside) before it starts the main process, and by `wrenn-nsinit exec` before it runs a
 * command: everything in a capsule inherits it across fork and exec.
 */
#ifndef WRENN_SECCOMP_POLICY_H
#define WRENN_SECCOMP_POLICY_H

#include <linux/filter.h>
#include <stddef.h>

/* Per-template switches (the template manifest's nestedUserNamespaces / perfEvents). */
#define SECCOMP_ALLOW_USERNS 1u /* new namespaces of every kind, setns, and the mount family */
#define SECCOMP_ALLOW_PERF 2u   /* perf_event_open */

/* "userns,perf", "userns", "" or "none" -> flags; -1 (errno EINVAL) on an unknown word. */
int seccomp_policy_parse(const char *list, unsigned *allow);

/* Compiles the filter for `allow` into *prog (heap memory, kept for the process's life).
 * Needs no file system: call it on the host, before pivot_root. 0, or -1 with errno set. */
int seccomp_policy_build(unsigned allow, struct sock_fprog *prog);

/* Installs *prog on the calling thread. No no_new_privs (setuid sudo keeps working): the caller
 * must hold CAP_SYS_ADMIN in its user namespace, i.e. be root in the capsule's user namespace. */
int seccomp_policy_install(const struct sock_fprog *prog);

/* seccomp_policy_parse + seccomp_policy_build, with the program cached next to the running binary
 * (<exe>.seccomp-<allow>.bpf): what wrenn-nsinit calls, on the host, with --seccomp-allow. */
int seccomp_policy_prepare(const char *allow_list, struct sock_fprog *prog);

#endif
