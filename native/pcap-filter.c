// tcpdump's filter language, compiled and run by libpcap (part of the nodeplane addon).
//
// filterCompile(expr, snaplen) compiles a filter for Ethernet frames with pcap_compile on a
// "dead" handle (no device is opened) and returns the BPF program as a Buffer of
// struct bpf_insn. filterBatch(...) runs such a program over a batch of frames that live in
// one pool buffer, with libpcap's own bpf_filter interpreter, one call per batch so that a
// batch costs one crossing between JavaScript and C. No policy lives here.
//
// libpcap is opened with dlopen on first use rather than linked: the addon (TAP devices
// included) then loads on a machine without libpcap, and only filters say what is missing.
// Nor are its headers needed to build: the few types the calls use are declared below, as
// pcap/pcap.h and pcap/bpf.h declare them (classic BPF and libpcap's ABI, stable for
// decades). filterLoad() returns null once libpcap is loaded, or the reason it cannot be.

#ifndef NAPI_VERSION
#define NAPI_VERSION 8
#endif
#include <node_api.h>

#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pcap-filter.h"

// From pcap/pcap.h, pcap/bpf.h and pcap/dlt.h.
typedef struct pcap pcap_t;
typedef unsigned int bpf_u_int32;
typedef unsigned char u_char;
typedef unsigned short u_short;
typedef unsigned int u_int;
struct bpf_insn {
  u_short code;
  u_char jt;
  u_char jf;
  bpf_u_int32 k;
};
struct bpf_program {
  u_int bf_len;
  struct bpf_insn* bf_insns;
};
#define DLT_EN10MB 1
#define PCAP_ERRBUF_SIZE 256
#define PCAP_NETMASK_UNKNOWN 0xffffffff

// The libpcap functions the filters use, resolved once.
static struct {
  int tried;
  char error[256];
  pcap_t* (*open_dead)(int, int);
  int (*compile)(pcap_t*, struct bpf_program*, const char*, int, bpf_u_int32);
  void (*freecode)(struct bpf_program*);
  char* (*geterr)(pcap_t*);
  void (*close)(pcap_t*);
  u_int (*filter)(const struct bpf_insn*, const u_char*, u_int, u_int);
} lib;

// Loads libpcap (its runtime soname first, as Debian's libpcap0.8 installs it); NULL when
// every function is there, else the reason.
static const char* load_libpcap(void) {
  if (lib.tried) return lib.error[0] ? lib.error : NULL;
  lib.tried = 1;
  static const char* const names[] = {"libpcap.so.0.8", "libpcap.so.1", "libpcap.so"};
  void* h = NULL;
  for (size_t i = 0; i < sizeof names / sizeof names[0] && h == NULL; i++) h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
  if (h == NULL) {
    snprintf(lib.error, sizeof lib.error, "libpcap is not installed (%s)", dlerror());
    return lib.error;
  }
  *(void**)&lib.open_dead = dlsym(h, "pcap_open_dead");
  *(void**)&lib.compile = dlsym(h, "pcap_compile");
  *(void**)&lib.freecode = dlsym(h, "pcap_freecode");
  *(void**)&lib.geterr = dlsym(h, "pcap_geterr");
  *(void**)&lib.close = dlsym(h, "pcap_close");
  *(void**)&lib.filter = dlsym(h, "bpf_filter");
  if (!lib.open_dead || !lib.compile || !lib.freecode || !lib.geterr || !lib.close || !lib.filter) {
    snprintf(lib.error, sizeof lib.error, "libpcap lacks a function nodeplane needs");
    return lib.error;
  }
  return NULL;
}

#define CHECK(call)                                                   \
  do {                                                                \
    if ((call) != napi_ok) {                                          \
      napi_throw_error(env, NULL, "nodeplane: N-API call failed"); \
      return NULL;                                                    \
    }                                                                 \
  } while (0)

static void* typed_array_data(napi_env env, napi_value v, size_t elem, size_t* count) {
  napi_typedarray_type type;
  size_t length;
  void* data;
  napi_value ab;
  size_t offset;
  if (napi_get_typedarray_info(env, v, &type, &length, &data, &ab, &offset) != napi_ok) return NULL;
  size_t size = (type == napi_int32_array || type == napi_uint32_array) ? 4 : 1;
  if (size != elem) return NULL;
  *count = length;
  return data;
}

// filterLoad(): null when libpcap is loaded, else the reason (string).
static napi_value js_filter_load(napi_env env, napi_callback_info info) {
  const char* why = load_libpcap();
  napi_value r;
  if (why == NULL) CHECK(napi_get_null(env, &r));
  else CHECK(napi_create_string_utf8(env, why, NAPI_AUTO_LENGTH, &r));
  return r;
}

// filterCompile(expr: string, snaplen: number): Buffer (struct bpf_insn[])
static napi_value js_compile(napi_env env, napi_callback_info info) {
  const char* why = load_libpcap();
  if (why != NULL) {
    napi_throw_error(env, "ENOLIBPCAP", why);
    return NULL;
  }
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2) {
    napi_throw_type_error(env, NULL, "filterCompile(expr, snaplen)");
    return NULL;
  }
  size_t len;
  CHECK(napi_get_value_string_utf8(env, argv[0], NULL, 0, &len));
  char* expr = malloc(len + 1);
  if (expr == NULL) {
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  napi_get_value_string_utf8(env, argv[0], expr, len + 1, &len);
  int32_t snaplen = 262144;
  napi_get_value_int32(env, argv[1], &snaplen);
  pcap_t* p = lib.open_dead(DLT_EN10MB, snaplen);
  if (p == NULL) {
    free(expr);
    napi_throw_error(env, NULL, "pcap_open_dead failed");
    return NULL;
  }
  struct bpf_program prog;
  if (lib.compile(p, &prog, expr, 1, PCAP_NETMASK_UNKNOWN) != 0) {
    char msg[PCAP_ERRBUF_SIZE + 64];
    snprintf(msg, sizeof msg, "%s", lib.geterr(p));
    lib.close(p);
    free(expr);
    napi_value err, code, text;
    napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &text);
    napi_create_string_utf8(env, "EFILTER", NAPI_AUTO_LENGTH, &code);
    napi_create_error(env, code, text, &err);
    napi_throw(env, err);
    return NULL;
  }
  free(expr);
  size_t bytes = prog.bf_len * sizeof(struct bpf_insn);
  void* out;
  napi_value buf;
  napi_status st = napi_create_buffer_copy(env, bytes, prog.bf_insns, &out, &buf);
  lib.freecode(&prog);
  lib.close(p);
  if (st != napi_ok) {
    napi_throw_error(env, NULL, "cannot allocate the program");
    return NULL;
  }
  return buf;
}

// filterBatch(prog, data, start, len, slots, n, verdicts): accepted count.
// verdicts[i] = 1 when the frame in slots[i] (bytes data[start[s] .. start[s]+len[s])) matches.
static napi_value js_filter_batch(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 7) {
    napi_throw_type_error(env, NULL, "filterBatch(prog, data, start, len, slots, n, verdicts)");
    return NULL;
  }
  void* prog;
  size_t prog_len;
  uint8_t* data;
  size_t data_len;
  CHECK(napi_get_buffer_info(env, argv[0], &prog, &prog_len));
  CHECK(napi_get_buffer_info(env, argv[1], (void**)&data, &data_len));
  size_t n_start = 0, n_len = 0, n_slots = 0, n_verdicts = 0;
  const int32_t* start = typed_array_data(env, argv[2], 4, &n_start);
  const int32_t* lens = typed_array_data(env, argv[3], 4, &n_len);
  const int32_t* slots = typed_array_data(env, argv[4], 4, &n_slots);
  uint8_t* verdicts = typed_array_data(env, argv[6], 1, &n_verdicts);
  int32_t n = 0;
  napi_get_value_int32(env, argv[5], &n);
  if (lib.filter == NULL) {
    napi_throw_error(env, NULL, "filterBatch: no filter was compiled");
    return NULL;
  }
  if (!start || !lens || !slots || !verdicts || n < 0 || (size_t)n > n_slots || (size_t)n > n_verdicts ||
      prog_len % sizeof(struct bpf_insn) != 0 || prog_len == 0) {
    napi_throw_range_error(env, NULL, "filterBatch: bad arguments");
    return NULL;
  }
  const struct bpf_insn* insns = prog;
  int32_t accepted = 0;
  for (int32_t i = 0; i < n; i++) {
    int32_t s = slots[i];
    uint8_t ok = 0;
    if (s >= 0 && (size_t)s < n_start && (size_t)s < n_len) {
      int64_t off = start[s], l = lens[s];
      if (off >= 0 && l >= 0 && (uint64_t)(off + l) <= data_len) {
        ok = lib.filter(insns, data + off, (u_int)l, (u_int)l) != 0;
      }
    }
    verdicts[i] = ok;
    accepted += ok;
  }
  napi_value r;
  CHECK(napi_create_int32(env, accepted, &r));
  return r;
}

napi_status pcap_filter_register(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"filterLoad", NULL, js_filter_load, NULL, NULL, NULL, napi_default, NULL},
      {"filterCompile", NULL, js_compile, NULL, NULL, NULL, napi_default, NULL},
      {"filterBatch", NULL, js_filter_batch, NULL, NULL, NULL, napi_default, NULL},
  };
  return napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
