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
    }
  ]
}
