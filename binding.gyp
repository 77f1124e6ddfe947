{
  "targets": [
    {
      "target_name": "nodeplane",
      "sources": ["native/tap.c", "native/pcap-filter.c", "native/copy-ranges.c", "native/uring-batch.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-std=gnu11", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "libraries": ["-ldl", "-l:liburing.a"],
      "ldflags": ["-Wl,--exclude-libs,ALL"],
      "conditions": [
        ["OS!='linux'", { "type": "none", "sources!": ["native/tap.c", "native/pcap-filter.c", "native/copy-ranges.c", "native/uring-batch.c"] }]
      ]
    }
  ]
}
