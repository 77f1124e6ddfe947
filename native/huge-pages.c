// adviseHugePages: asks the kernel to back a large buffer with 2 MiB pages.
//
// adviseHugePages(view) calls madvise(MADV_HUGEPAGE) on the whole 2 MiB-aligned pages inside
// the bytes of a typed array (a Buffer, a view of a SharedArrayBuffer) and returns how many
// bytes that covers (0 when none, or when the kernel refuses). Called before the memory is
// first written, the pages are then faulted in huge. Transparent huge pages set to `madvise`
// (Debian's default) give them only to memory that asks. Why: a frame pool or a capture ring
// spans thousands of 4 KiB pages, more than the TLB holds, and each page's first touch after
// a TLB flush (every system call, on a CPU with page-table isolation and no PCID) costs a
// page walk. No policy lives here.

#ifndef NAPI_VERSION
#define NAPI_VERSION 8
#endif
#include <node_api.h>

#include <stdint.h>
#include <sys/mman.h>

#include "huge-pages.h"

#define HUGE_PAGE ((uintptr_t)2 * 1024 * 1024)

static napi_value js_advise_huge_pages(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_value result;
  napi_typedarray_type type;
  size_t length = 0, offset;
  void* data = NULL;
  napi_value ab;
  bool is_typed = false;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      napi_is_typedarray(env, argv[0], &is_typed) != napi_ok || !is_typed ||
      napi_get_typedarray_info(env, argv[0], &type, &length, &data, &ab, &offset) != napi_ok) {
    napi_throw_type_error(env, NULL, "adviseHugePages(typedArray)");
    return NULL;
  }
  size_t bytes = length;
  if (type == napi_int16_array || type == napi_uint16_array) bytes *= 2;
  else if (type == napi_int32_array || type == napi_uint32_array || type == napi_float32_array) bytes *= 4;
  else if (type == napi_float64_array || type == napi_bigint64_array || type == napi_biguint64_array) bytes *= 8;
  uintptr_t start = ((uintptr_t)data + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
  uintptr_t end = ((uintptr_t)data + bytes) & ~(HUGE_PAGE - 1);
  double advised = 0;
#ifdef MADV_HUGEPAGE
  if (data != NULL && end > start && madvise((void*)start, end - start, MADV_HUGEPAGE) == 0) advised = (double)(end - start);
#endif
  napi_create_double(env, advised, &result);
  return result;
}

napi_status huge_pages_register(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"adviseHugePages", NULL, js_advise_huge_pages, NULL, NULL, NULL, napi_default, NULL},
  };
  return napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
