#pragma once
#include <string>

namespace wrenn {
// Sets the host name of the UTS namespace process `pid` is in. Throws std::runtime_error.
void setHostnameIn(int pid, const std::string& name);
}  // namespace wrenn
