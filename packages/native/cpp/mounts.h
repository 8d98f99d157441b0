// Loop-device mounts and unmounts by system call, off the JS thread. util-linux's `mount -o loop`
// opens every loop device on the host to look for one already backed by the same file (O(number
// of capsules) per create: 2,500 syscalls at 500 capsules), and `umount` parses the whole mount
// table; here a create is LOOP_CTL_GET_FREE + LOOP_CONFIGURE + mount(2), whatever the host holds.
// Also idmapped binds on the host (util-linux 2.38 cannot make them): a directory shown with its
// stored ids shifted, e.g. a volume exported to a VM's 9p server.
#pragma once
#include <node_api.h>

namespace wrenn {
void registerMounts(napi_env env, napi_value exports);
}  // namespace wrenn
