{
  "targets": [
    {
      "target_name": "wrenn_native",
      "sources": ["cpp/addon.cc", "cpp/namespaces.cc", "cpp/uffd.cc", "cpp/spawn.cc", "cpp/relay.cc", "cpp/http1.cc", "cpp/memory.cc", "cpp/fs-as-user.cc", "cpp/pid-watch.cc", "cpp/mounts.cc", "cpp/sock-diag.cc", "cpp/tls-front.cc", "cpp/listen-socket.cc", "cpp/h2-gateway.cc"],
      "cflags_cc": ["-std=c++17", "-O2", "-Wall", "-Wextra", "-pthread"],
      "ldflags": ["-pthread"],
      "cflags_cc!": ["-fno-exceptions"]
    }
  ]
}
