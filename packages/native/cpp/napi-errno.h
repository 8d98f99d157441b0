// The addon's one way to throw a failed system call: an Error whose message names the call and the
// error, with `errno` set (a positive number; JS maps it with util.getSystemErrorName(-errno)).
#pragma once
#include <node_api.h>
#include <string.h>

#include <string>

namespace wrenn {
inline napi_value throwErrno(napi_env env, const char* what, int err) {
  std::string msg = std::string(what) + ": " + strerror(err);
  napi_value message, error, errnoValue;
  napi_create_string_utf8(env, msg.c_str(), NAPI_AUTO_LENGTH, &message);
  napi_create_error(env, nullptr, message, &error);
  napi_create_int32(env, err, &errnoValue);
  napi_set_named_property(env, error, "errno", errnoValue);
  napi_throw(env, error);
  return nullptr;
}
}  // namespace wrenn
