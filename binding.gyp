{
  "targets": [
    {
      "target_name": "nodeplane",
      "sources": ["native/tap.c", "native/pcap-filter.c", "native/copy-ranges.c", "native/uring-batch.c", "native/realtime.c", "native/aligned-buffer.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-std=gnu11", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "libraries": ["-ldl"],
      "ldflags": ["-Wl,--exclude-libs,ALL"],
      "variables": {
        "has_liburing": "<!(echo '#include <liburing.h>' | cc -E -x c - >/dev/null 2>&1 && echo 1 || echo 0)"
      },
      "conditions": [
        ["has_liburing==1", { "defines": ["NODEPLANE_URING"], "libraries": ["-l:liburing.a"] }],
        ["OS!='linux'", { "type": "none", "sources!": ["native/tap.c", "native/pcap-filter.c", "native/copy-ranges.c", "native/uring-batch.c", "native/realtime.c", "native/aligned-buffer.c"] }]
      ]
    }
  ]
}
