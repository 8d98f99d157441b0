{
  "targets": [
    {
      "target_name": "wrenn_native",
      "sources": ["cpp/addon.cc", "cpp/uffd.cc"],
      "cflags_cc": ["-std=c++17", "-O2", "-Wall", "-Wextra"],
      "cflags_cc!": ["-fno-exceptions"]
    }
  ]
}
