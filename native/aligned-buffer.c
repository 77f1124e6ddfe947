// alignedBuffer: a Buffer whose memory starts on a 4096-byte page, for O_DIRECT writes.
//
// alignedBuffer(bytes): `bytes` (rounded up to a page) of zeroed memory from posix_memalign,
// freed when the Buffer is collected. The capture writer (capture-ring.ts) writes its files
// with O_DIRECT, which takes only memory, offsets and lengths aligned to the disk's blocks;
// Node's own Buffers start wherever malloc put them. No policy lives here.

#ifndef NAPI_VERSION
#define NAPI_VERSION 8
#endif
#include <node_api.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aligned-buffer.h"

#define PAGE 4096
// 1 GiB: far above any writer's need; a bound against a mistaken argument.
#define MAX_BYTES (1 << 30)

static void free_aligned(napi_env env, void* data, void* hint) {
  (void)env;
  (void)hint;
  free(data);
}

static napi_value js_aligned_buffer(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int64_t bytes = -1;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      napi_get_value_int64(env, argv[0], &bytes) != napi_ok || bytes <= 0 || bytes > MAX_BYTES) {
    napi_throw_range_error(env, NULL, "alignedBuffer(bytes): 1 to 2^30 bytes");
    return NULL;
  }
  size_t size = ((size_t)bytes + PAGE - 1) & ~(size_t)(PAGE - 1);
  void* mem = NULL;
  if (posix_memalign(&mem, PAGE, size) != 0) {
    napi_throw_error(env, NULL, "alignedBuffer: out of memory");
    return NULL;
  }
  memset(mem, 0, size);
  napi_value buf;
  if (napi_create_external_buffer(env, size, mem, free_aligned, NULL, &buf) != napi_ok) {
    free(mem);
    napi_throw_error(env, NULL, "alignedBuffer: external buffers are not allowed in this runtime");
    return NULL;
  }
  return buf;
}

napi_status aligned_buffer_register(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"alignedBuffer", NULL, js_aligned_buffer, NULL, NULL, NULL, napi_default, NULL},
  };
  return napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
