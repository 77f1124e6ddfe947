// copyRanges: many byte ranges copied (or zeroed) in one call, for captures.
//
// copyRanges(dst, src, ops, n): for each i < n, ops[3i] is an offset in dst, ops[3i+1] an
// offset in src (or -1: zero the range instead), ops[3i+2] a length. A capture lays a batch's
// records into a ring of shared memory this way: the frames' bytes from the pool in one
// crossing into C, copied by memcpy. (V8 copies into SharedArrayBuffer memory with atomic
// stores, several times slower.) Every range is checked against both buffers first; nothing
// is copied when one is out of bounds. No policy lives here.

#ifndef NAPI_VERSION
#define NAPI_VERSION 8
#endif
#include <node_api.h>

#include <stdint.h>
#include <string.h>

#include "copy-ranges.h"

// The bytes of a typed array (any element type) or a Buffer, or NULL.
static uint8_t* bytes_of(napi_env env, napi_value v, size_t* len) {
  bool is_typed = false;
  if (napi_is_typedarray(env, v, &is_typed) != napi_ok || !is_typed) return NULL;
  napi_typedarray_type type;
  size_t length, offset;
  void* data;
  napi_value ab;
  if (napi_get_typedarray_info(env, v, &type, &length, &data, &ab, &offset) != napi_ok) return NULL;
  if (type != napi_uint8_array && type != napi_int8_array && type != napi_uint8_clamped_array) return NULL;
  *len = length;
  return data;
}

static napi_value js_copy_ranges(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 4) {
    napi_throw_type_error(env, NULL, "copyRanges(dst, src, ops, n)");
    return NULL;
  }
  size_t dst_len = 0, src_len = 0, ops_len = 0;
  uint8_t* dst = bytes_of(env, argv[0], &dst_len);
  uint8_t* src = bytes_of(env, argv[1], &src_len);
  napi_typedarray_type type;
  void* ops_data = NULL;
  napi_value ab;
  size_t offset;
  bool ops_ok = napi_get_typedarray_info(env, argv[2], &type, &ops_len, &ops_data, &ab, &offset) == napi_ok && type == napi_int32_array;
  int32_t n = -1;
  napi_get_value_int32(env, argv[3], &n);
  if (dst == NULL || src == NULL || !ops_ok || n < 0 || (size_t)n * 3 > ops_len) {
    napi_throw_range_error(env, NULL, "copyRanges: bad arguments");
    return NULL;
  }
  const int32_t* ops = ops_data;
  for (int32_t i = 0; i < n; i++) {
    int64_t d = ops[3 * i], s = ops[3 * i + 1], l = ops[3 * i + 2];
    if (d < 0 || l < 0 || (uint64_t)(d + l) > dst_len || (s >= 0 && (uint64_t)(s + l) > src_len) || s < -1) {
      napi_throw_range_error(env, NULL, "copyRanges: a range is out of bounds");
      return NULL;
    }
  }
  for (int32_t i = 0; i < n; i++) {
    int32_t d = ops[3 * i], s = ops[3 * i + 1], l = ops[3 * i + 2];
    if (s < 0) memset(dst + d, 0, (size_t)l);
    else memcpy(dst + d, src + s, (size_t)l);
  }
  return NULL;
}

napi_status copy_ranges_register(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"copyRanges", NULL, js_copy_ranges, NULL, NULL, NULL, napi_default, NULL},
  };
  return napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
