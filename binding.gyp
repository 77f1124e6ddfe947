{
  "targets": [
    {
      "target_name": "nodeplane_tap",
      "sources": ["native/tap.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-std=gnu11", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "conditions": [
        ["OS!='linux'", { "type": "none", "sources!": ["native/tap.c"] }]
      ]
    },
    {
      "target_name": "nodeplane_pcap",
      "sources": ["native/pcap-filter.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-std=gnu11", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "libraries": ["-lpcap"],
      "conditions": [
        ["OS!='linux'", { "type": "none", "sources!": ["native/pcap-filter.c"] }]
      ]
    }
  ]
}
