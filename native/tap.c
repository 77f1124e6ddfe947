// The nodeplane addon's TAP half: a thin, batched syscall shim for Linux TAP devices.
//
// It opens and configures a TAP device, tells JavaScript when it is readable (libuv
// poll), reads batches of frames into memory JavaScript owns when asked to, and writes
// batches of frames. It makes no decisions about the frames or the memory: all policy
// lives in TypeScript (src/ports/tap-native.ts and above).

#ifndef NAPI_VERSION
#define NAPI_VERSION 8
#endif
#include <node_api.h>
#include <uv.h>

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <linux/if_tun.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "copy-ranges.h"
#include "realtime.h"
#include "aligned-buffer.h"
#include "pcap-filter.h"
#include "uring-batch.h"

#define MAX_SLOT_CAPACITY (1 << 20)
#define MAX_BATCH (1 << 16)
// Frames the last readBatch must have read for the next to start with an io_uring batch.
#define URING_MIN_BATCH 4

// UDP-tunnel GSO (Linux 6.17+): TUNSETOFFLOAD bits and the header that goes with them,
// struct virtio_net_hdr_v1_hash_tunnel (24 bytes: the 12-byte v1 header, 8 bytes of hash
// fields, outer_th_offset, inner_nh_offset). Older uapi headers lack the names.
#ifndef TUN_F_UDP_TUNNEL_GSO
#define TUN_F_UDP_TUNNEL_GSO 0x080
#endif
#ifndef TUN_F_UDP_TUNNEL_GSO_CSUM
#define TUN_F_UDP_TUNNEL_GSO_CSUM 0x100
#endif
#define VNET_HDR_LEN 10
#define VNET_HDR_TUNNEL_LEN 24

typedef struct tap_s tap_t;

// State of one tapStartReading .. tapStopReading period. Freed in the uv_close callback.
typedef struct reader_s {
  uv_poll_t poll;
  tap_t* tap;
  napi_env env;
  napi_ref self_ref;  // strong: keeps the handle object (and so tap_t) alive while reading
  napi_ref pool_ref;
  napi_ref offsets_ref;
  napi_ref lengths_ref;
  napi_ref cb_ref;
  napi_async_context async_ctx;
  uint32_t slot_capacity;
  bool stopped;      // detached from the tap; uv_close has been called
  bool in_callback;  // inside on_poll: references are released when it ends
  bool refs_released;
} reader_t;

struct tap_s {
  int fd;
  char name[IFNAMSIZ];
  reader_t* reader;  // non-NULL while reading
  uint64_t rx_frames;
  uint64_t rx_batches;
  uint64_t rx_truncated;
  uint64_t tx_frames;
  uint64_t tx_eagain;
  uint64_t rx_uring;  // frames read through io_uring batches
  uint64_t tx_uring;  // frames written through io_uring batches
  int32_t rx_last;    // frames the last readBatch read: sizes the next io_uring batch
};

// ---------------------------------------------------------------------------
// helpers

#define CHECK_NAPI(env, call)                                       \
  do {                                                              \
    if ((call) != napi_ok) {                                        \
      throw_last_napi_error(env, #call);                            \
      return NULL;                                                  \
    }                                                               \
  } while (0)

static void throw_last_napi_error(napi_env env, const char* what) {
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (pending) return;
  const napi_extended_error_info* info = NULL;
  napi_get_last_error_info(env, &info);
  char msg[256];
  snprintf(msg, sizeof msg, "nodeplane_tap: %s failed: %s", what,
           info && info->error_message ? info->error_message : "unknown N-API error");
  napi_throw_error(env, NULL, msg);
}

// Throws Error("<syscall> <name>: <strerror>") with numeric `errno`, `syscall` and
// `ifname` properties. src/ports/tap-native.ts turns these into user-facing messages.
static void throw_errno(napi_env env, int err, const char* syscall, const char* ifname) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s %s: %s", syscall, ifname ? ifname : "", strerror(err));
  napi_value m, e, v;
  if (napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &m) != napi_ok) return;
  if (napi_create_error(env, NULL, m, &e) != napi_ok) return;
  napi_create_int32(env, err, &v);
  napi_set_named_property(env, e, "errno", v);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, e, "syscall", v);
  if (ifname) {
    napi_create_string_utf8(env, ifname, NAPI_AUTO_LENGTH, &v);
    napi_set_named_property(env, e, "ifname", v);
  }
  napi_throw(env, e);
}

static tap_t* get_tap(napi_env env, napi_value obj) {
  void* p = NULL;
  napi_valuetype t;
  if (napi_typeof(env, obj, &t) != napi_ok || t != napi_object ||
      napi_unwrap(env, obj, &p) != napi_ok || p == NULL) {
    napi_throw_type_error(env, NULL, "expected a TapHandle returned by tapOpen()");
    return NULL;
  }
  return (tap_t*)p;
}

static bool get_u8_array(napi_env env, napi_value v, uint8_t** data, size_t* len,
                         const char* what) {
  bool is_ta = false;
  napi_typedarray_type type;
  void* d = NULL;
  if (napi_is_typedarray(env, v, &is_ta) != napi_ok || !is_ta ||
      napi_get_typedarray_info(env, v, &type, len, &d, NULL, NULL) != napi_ok ||
      (type != napi_uint8_array && type != napi_uint8_clamped_array)) {
    char msg[96];
    snprintf(msg, sizeof msg, "%s must be a Buffer or Uint8Array", what);
    napi_throw_type_error(env, NULL, msg);
    return false;
  }
  *data = (uint8_t*)d;
  return true;
}

static bool get_i32_array(napi_env env, napi_value v, int32_t** data, size_t* len,
                          const char* what) {
  bool is_ta = false;
  napi_typedarray_type type;
  void* d = NULL;
  if (napi_is_typedarray(env, v, &is_ta) != napi_ok || !is_ta ||
      napi_get_typedarray_info(env, v, &type, len, &d, NULL, NULL) != napi_ok ||
      type != napi_int32_array) {
    char msg[96];
    snprintf(msg, sizeof msg, "%s must be an Int32Array", what);
    napi_throw_type_error(env, NULL, msg);
    return false;
  }
  *data = (int32_t*)d;
  return true;
}

static bool get_u32(napi_env env, napi_value v, uint32_t lo, uint32_t hi, uint32_t* out,
                    const char* what) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok || d != d || d < lo || d > hi ||
      d != (double)(uint32_t)d) {
    char msg[128];
    snprintf(msg, sizeof msg, "%s must be an integer in [%u, %u]", what, lo, hi);
    napi_throw_range_error(env, NULL, msg);
    return false;
  }
  *out = (uint32_t)d;
  return true;
}

// ---------------------------------------------------------------------------
// reading
//
// tapStartReading registers the caller's pool, slot offsets and lengths arrays and a
// callback, and watches the fd with uv_poll. A wake-up reads nothing by itself: it calls
// onReadable(0), and JavaScript, having put free slots' offsets into the array, asks for
// frames with tapReadBatch(h, n), as many rounds as it likes. So the pool's slots are only
// lent for the length of one synchronous call, never held while the device is idle.

static void reader_release_refs(reader_t* r) {
  if (r->refs_released) return;
  r->refs_released = true;
  napi_env env = r->env;
  napi_delete_reference(env, r->pool_ref);
  napi_delete_reference(env, r->offsets_ref);
  napi_delete_reference(env, r->lengths_ref);
  napi_delete_reference(env, r->cb_ref);
  napi_async_destroy(env, r->async_ctx);
  napi_delete_reference(env, r->self_ref);  // last: may make the handle collectable
}

static void on_reader_closed(uv_handle_t* h) { free(h->data); }

static void reader_env_cleanup(void* arg);

// Detaches the reader from its tap and closes the poll handle. uv_close removes the fd
// from epoll synchronously, so the fd may be closed right after this returns.
static void reader_stop(reader_t* r) {
  if (r->stopped) return;
  r->stopped = true;
  if (r->tap->reader == r) r->tap->reader = NULL;
  napi_remove_env_cleanup_hook(r->env, reader_env_cleanup, r);
  uv_poll_stop(&r->poll);
  uv_close((uv_handle_t*)&r->poll, on_reader_closed);
  if (!r->in_callback) reader_release_refs(r);
}

// The environment is going away (process or worker exit) while still reading: close
// the poll handle so the loop can be closed; the references go with the environment.
static void reader_env_cleanup(void* arg) {
  reader_t* r = (reader_t*)arg;
  if (r->stopped) return;
  r->stopped = true;
  r->refs_released = true;
  if (r->tap->reader == r) r->tap->reader = NULL;
  uv_poll_stop(&r->poll);
  uv_close((uv_handle_t*)&r->poll, on_reader_closed);
}

// Calls onReadable(arg). Returns false if it threw (reported as an uncaught exception).
static bool call_on_readable(reader_t* r, napi_value cb, int32_t arg) {
  napi_env env = r->env;
  napi_value argv[1], recv, result;
  napi_create_int32(env, arg, &argv[0]);
  napi_get_global(env, &recv);  // napi_make_callback needs an object receiver
  napi_status s = napi_make_callback(env, r->async_ctx, recv, cb, 1, argv, &result);
  if (s == napi_ok) return true;
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (pending) {
    napi_value exc;
    napi_get_and_clear_last_exception(env, &exc);
    napi_fatal_exception(env, exc);
  }
  return false;
}

// When the last wake-up began (uv_hrtime, ns), and when the first read() of the last
// readBatch began and returned: read by a latency probe (lastPollNs, lastReadNs).
static uint64_t last_poll_ns;
static uint64_t last_read_start_ns;
static uint64_t last_read_end_ns;

static void on_poll(uv_poll_t* handle, int status, int events) {
  (void)events;
  last_poll_ns = uv_hrtime();
  reader_t* r = (reader_t*)handle->data;
  if (r->stopped) return;
  napi_env env = r->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  r->in_callback = true;

  napi_value self, cb;
  napi_get_reference_value(env, r->self_ref, &self);  // held in this scope while we run
  napi_get_reference_value(env, r->cb_ref, &cb);
  // Readable, or POLLERR (the TAP was detached from its device), which libuv reports as a
  // negative status after it has stopped watching. Either way JavaScript reads first: what
  // is left, and then the read's own error (EBADFD for a deleted device), which stops us.
  bool ok = call_on_readable(r, cb, 0);
  if (ok && status < 0 && !r->stopped) {
    int err = -status;
    char probe;
    if (read(r->tap->fd, &probe, 0) < 0) err = errno;  // a detached TAP says why
    reader_stop(r);
    call_on_readable(r, cb, -err);
  }

  r->in_callback = false;
  if (r->stopped) reader_release_refs(r);
  napi_close_handle_scope(env, scope);
}

// tapStartReading(h, pool, slotOffsets, lengths, slotCapacity, onReadable)
static napi_value js_start_reading(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  CHECK_NAPI(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 6) {
    napi_throw_type_error(env, NULL, "tapStartReading expects 6 arguments");
    return NULL;
  }
  tap_t* t = get_tap(env, argv[0]);
  if (!t) return NULL;
  if (t->fd < 0) {
    throw_errno(env, EBADF, "tapStartReading", t->name);
    return NULL;
  }
  if (t->reader) {
    throw_errno(env, EALREADY, "tapStartReading", t->name);
    return NULL;
  }
  uint8_t* pool;
  int32_t *offs, *lens;
  size_t pool_len, offs_len, lens_len;
  uint32_t cap;
  if (!get_u8_array(env, argv[1], &pool, &pool_len, "pool")) return NULL;
  if (!get_i32_array(env, argv[2], &offs, &offs_len, "slotOffsets")) return NULL;
  if (!get_i32_array(env, argv[3], &lens, &lens_len, "lengths")) return NULL;
  if (!get_u32(env, argv[4], 1, MAX_SLOT_CAPACITY, &cap, "slotCapacity")) return NULL;
  napi_valuetype cbt;
  CHECK_NAPI(env, napi_typeof(env, argv[5], &cbt));
  if (cbt != napi_function) {
    napi_throw_type_error(env, NULL, "onReadable must be a function");
    return NULL;
  }
  if (offs_len == 0 || offs_len > MAX_BATCH || lens_len < offs_len) {
    napi_throw_range_error(env, NULL,
                           "slotOffsets needs 1..65536 entries and lengths at least as many");
    return NULL;
  }
  if (cap > pool_len) {
    napi_throw_range_error(env, NULL, "slotCapacity is larger than the pool");
    return NULL;
  }

  uv_loop_t* loop;
  CHECK_NAPI(env, napi_get_uv_event_loop(env, &loop));
  reader_t* r = (reader_t*)calloc(1, sizeof *r);
  if (!r) {
    throw_errno(env, ENOMEM, "tapStartReading", t->name);
    return NULL;
  }
  int rc = uv_poll_init(loop, &r->poll, t->fd);
  if (rc != 0) {
    free(r);
    throw_errno(env, -rc, "uv_poll_init", t->name);
    return NULL;
  }
  r->poll.data = r;
  r->tap = t;
  r->env = env;
  r->slot_capacity = cap;
  napi_value resource_name;
  napi_create_string_utf8(env, "nodeplane:tap", NAPI_AUTO_LENGTH, &resource_name);
  if (napi_create_reference(env, argv[0], 1, &r->self_ref) != napi_ok ||
      napi_create_reference(env, argv[1], 1, &r->pool_ref) != napi_ok ||
      napi_create_reference(env, argv[2], 1, &r->offsets_ref) != napi_ok ||
      napi_create_reference(env, argv[3], 1, &r->lengths_ref) != napi_ok ||
      napi_create_reference(env, argv[5], 1, &r->cb_ref) != napi_ok ||
      napi_async_init(env, argv[0], resource_name, &r->async_ctx) != napi_ok) {
    // Not reachable in practice; leak the few references rather than track which exist.
    r->stopped = true;
    r->refs_released = true;
    uv_close((uv_handle_t*)&r->poll, on_reader_closed);
    throw_last_napi_error(env, "tapStartReading");
    return NULL;
  }
  napi_add_env_cleanup_hook(env, reader_env_cleanup, r);
  t->reader = r;
  rc = uv_poll_start(&r->poll, UV_READABLE, on_poll);
  if (rc != 0) {
    reader_stop(r);
    throw_errno(env, -rc, "uv_poll_start", t->name);
    return NULL;
  }
  return NULL;
}

// tapReadBatch(h, count) -> frames read | -errno
//
// Reads up to `count` frames, frame i into the pool at slotOffsets[i] (at most slotCapacity
// bytes), its length into lengths[i], until the device has no more (EAGAIN). An error that
// ends reading (the device was deleted: EBADFD) stops the reader; it is returned as -errno
// if no frame came before it, else on the next call. -EBADF when not reading.
static napi_value js_read_batch(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], out;
  CHECK_NAPI(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2) {
    napi_throw_type_error(env, NULL, "tapReadBatch expects 2 arguments");
    return NULL;
  }
  tap_t* t = get_tap(env, argv[0]);
  if (!t) return NULL;
  int32_t count;
  CHECK_NAPI(env, napi_get_value_int32(env, argv[1], &count));
  reader_t* r = t->reader;
  int32_t ret = 0;
  if (!r || r->stopped || r->refs_released || t->fd < 0) {
    ret = -EBADF;
  } else {
    // The arrays' data are looked up on every call: JavaScript may, in principle, have
    // replaced their backing stores since the last one.
    napi_value pool_v, offs_v, lens_v;
    napi_typedarray_type ty;
    size_t pool_len = 0, offs_len = 0, lens_len = 0;
    void *pd = NULL, *od = NULL, *ld = NULL;
    napi_get_reference_value(env, r->pool_ref, &pool_v);
    napi_get_reference_value(env, r->offsets_ref, &offs_v);
    napi_get_reference_value(env, r->lengths_ref, &lens_v);
    if (napi_get_typedarray_info(env, pool_v, &ty, &pool_len, &pd, NULL, NULL) != napi_ok ||
        napi_get_typedarray_info(env, offs_v, &ty, &offs_len, &od, NULL, NULL) != napi_ok ||
        napi_get_typedarray_info(env, lens_v, &ty, &lens_len, &ld, NULL, NULL) != napi_ok) {
      throw_last_napi_error(env, "tapReadBatch");
      return NULL;
    }
    if (count < 0 || (size_t)count > offs_len || (size_t)count > lens_len) {
      napi_throw_range_error(env, NULL, "count exceeds slotOffsets or lengths");
      return NULL;
    }
    uint8_t* pool = (uint8_t*)pd;
    int32_t* offs = (int32_t*)od;
    int32_t* lens = (int32_t*)ld;
    const size_t cap = r->slot_capacity;
    for (int32_t i = 0; i < count; i++) {
      if (offs[i] < 0 || (size_t)offs[i] + cap > pool_len) {
        char msg[128];
        snprintf(msg, sizeof msg, "slot %d (offset %d) is outside the pool", i, offs[i]);
        napi_throw_range_error(env, NULL, msg);
        return NULL;
      }
    }
    int err = 0;
    int32_t n = 0;
    last_read_start_ns = uv_hrtime();
    last_read_end_ns = 0;
    // After a batch of several frames, read as many again in one io_uring_enter; if every
    // read found a frame, go on below with read() until the device is empty.
    int32_t k = count < t->rx_last ? count : t->rx_last;
    if (k >= URING_MIN_BATCH && uring_batch_ready()) {
      bool more;
      n = uring_batch_read(t->fd, pool, offs, lens, (uint32_t)cap, k, &err, &more);
      last_read_end_ns = uv_hrtime();
      for (int32_t i = 0; i < n; i++) {
        if ((size_t)lens[i] > cap) {  // as read() below: cut to the slot
          lens[i] = (int32_t)cap;
          t->rx_truncated++;
        }
      }
      t->rx_uring += (uint64_t)n;
      if (!more) count = n;
    }
    while (n < count && err == 0) {
      ssize_t got = read(t->fd, pool + offs[n], cap);
      if (last_read_end_ns == 0) last_read_end_ns = uv_hrtime();
      if (got < 0) {
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) err = errno;
        break;
      }
      if ((size_t)got > cap) {  // TAP truncates to the buffer and reports the full length
        got = (ssize_t)cap;
        t->rx_truncated++;
      }
      lens[n++] = (int32_t)got;
    }
    t->rx_last = n;
    if (n > 0) {
      t->rx_frames += (uint64_t)n;
      t->rx_batches++;
      ret = n;
    } else if (err) {
      reader_stop(r);
      ret = -err;
    }
  }
  CHECK_NAPI(env, napi_create_int32(env, ret, &out));
  return out;
}

static napi_value js_stop_reading(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK_NAPI(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  tap_t* t = get_tap(env, argc ? argv[0] : NULL);
  if (!t) return NULL;
  if (t->reader) reader_stop(t->reader);
  return NULL;
}

// ---------------------------------------------------------------------------
// writing

// tapWriteBatch(h, pool, offsets, lengths, count) -> written | -errno
static napi_value js_write_batch(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  CHECK_NAPI(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 5) {
    napi_throw_type_error(env, NULL, "tapWriteBatch expects 5 arguments");
    return NULL;
  }
  tap_t* t = get_tap(env, argv[0]);
  if (!t) return NULL;
  uint8_t* pool;
  int32_t *offs, *lens;
  size_t pool_len, offs_len, lens_len;
  uint32_t count;
  if (!get_u8_array(env, argv[1], &pool, &pool_len, "pool")) return NULL;
  if (!get_i32_array(env, argv[2], &offs, &offs_len, "offsets")) return NULL;
  if (!get_i32_array(env, argv[3], &lens, &lens_len, "lengths")) return NULL;
  if (!get_u32(env, argv[4], 0, MAX_BATCH * 16, &count, "count")) return NULL;
  if (count > offs_len || count > lens_len) {
    napi_throw_range_error(env, NULL, "count exceeds offsets or lengths");
    return NULL;
  }
  for (uint32_t i = 0; i < count; i++) {
    if (offs[i] < 0 || lens[i] < 0 || (size_t)offs[i] + (size_t)lens[i] > pool_len) {
      char msg[128];
      snprintf(msg, sizeof msg, "frame %u (offset %d, length %d) is outside the pool", i,
               offs[i], lens[i]);
      napi_throw_range_error(env, NULL, msg);
      return NULL;
    }
  }
  if (t->fd < 0) {
    throw_errno(env, EBADF, "tapWriteBatch", t->name);
    return NULL;
  }
  int32_t written = 0;
  int err = 0;
  if (count >= 2 && uring_batch_ready()) {
    // One io_uring_enter for the batch instead of a write() per frame.
    written = uring_batch_write(t->fd, pool, offs, lens, (int32_t)count, &err);
    t->tx_uring += (uint64_t)written;
    if (err == EAGAIN || err == EWOULDBLOCK) t->tx_eagain++;
  }
  if (err == 0 && written < (int32_t)count) {  // no ring, or it was refused: write() each
    for (uint32_t i = (uint32_t)written; i < count; i++) {
      ssize_t w;
      do w = write(t->fd, pool + offs[i], (size_t)lens[i]);
      while (w < 0 && errno == EINTR);
      if (w < 0) {
        err = errno;
        if (err == EAGAIN || err == EWOULDBLOCK) t->tx_eagain++;
        break;
      }
      written++;
    }
  }
  t->tx_frames += (uint64_t)written;
  napi_value out;
  int32_t ret = written;
  if (written == 0 && err && err != EAGAIN && err != EWOULDBLOCK) ret = -err;
  CHECK_NAPI(env, napi_create_int32(env, ret, &out));
  return out;
}

// ---------------------------------------------------------------------------
// open / close / stats

static void tap_finalize(napi_env env, void* data, void* hint) {
  (void)env;
  (void)hint;
  tap_t* t = (tap_t*)data;
  // A reader holds a strong reference to the handle, so none is active here unless the
  // environment is being torn down, in which case its cleanup hook has detached it.
  if (t->reader) {
    t->reader->tap = t;  // keep reader_stop's bookkeeping valid
    t->reader->refs_released = true;
    reader_stop(t->reader);
  }
  if (t->fd >= 0) close(t->fd);
  free(t);
}

static int ifreq_ioctl(int sock, unsigned long req, struct ifreq* ifr) {
  int rc;
  do rc = ioctl(sock, req, ifr);
  while (rc < 0 && errno == EINTR);
  return rc < 0 ? errno : 0;
}

// tapOpen(name, mtu /* 0: keep */, mac /* Buffer(6) | null */, up, txQueueLen /* 0: keep */,
//         vnetHdr, tunnelGso) -> { fd, name, vnetHdrLen /* 0, 10 or 24 */ }
static napi_value js_open(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  CHECK_NAPI(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 6) {
    napi_throw_type_error(env, NULL, "tapOpen expects 6 or 7 arguments");
    return NULL;
  }
  char name[64];
  size_t name_len = 0;
  if (napi_get_value_string_utf8(env, argv[0], name, sizeof name, &name_len) != napi_ok) {
    napi_throw_type_error(env, NULL, "name must be a string");
    return NULL;
  }
  if (name_len >= IFNAMSIZ) {
    throw_errno(env, ENAMETOOLONG, "tapOpen", name);
    return NULL;
  }
  uint32_t mtu, txqlen;
  if (!get_u32(env, argv[1], 0, 65535, &mtu, "mtu")) return NULL;
  uint8_t mac[6];
  bool have_mac = false;
  napi_valuetype mt;
  CHECK_NAPI(env, napi_typeof(env, argv[2], &mt));
  if (mt != napi_null && mt != napi_undefined) {
    uint8_t* m;
    size_t ml;
    if (!get_u8_array(env, argv[2], &m, &ml, "mac")) return NULL;
    if (ml != 6) {
      napi_throw_range_error(env, NULL, "mac must be 6 bytes");
      return NULL;
    }
    memcpy(mac, m, 6);
    have_mac = true;
  }
  bool up = false;
  CHECK_NAPI(env, napi_get_value_bool(env, argv[3], &up));
  if (!get_u32(env, argv[4], 0, 1u << 30, &txqlen, "txQueueLen")) return NULL;
  bool vnet_hdr = false;
  CHECK_NAPI(env, napi_get_value_bool(env, argv[5], &vnet_hdr));
  bool tunnel_gso = false;
  if (argc > 6) CHECK_NAPI(env, napi_get_value_bool(env, argv[6], &tunnel_gso));

  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    throw_errno(env, errno, "open", name);
    return NULL;
  }
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI | (vnet_hdr ? IFF_VNET_HDR : 0);
  memcpy(ifr.ifr_name, name, name_len);
  int err = ifreq_ioctl(fd, TUNSETIFF, &ifr);
  if (err) {
    close(fd);
    throw_errno(env, err, "TUNSETIFF", name);
    return NULL;
  }
  int hdr_size = 0;
  if (vnet_hdr) {
    // Every frame carries a virtio_net_hdr; the kernel may hand over (and accepts) TCP
    // segmentation-offload frames up to 64 KiB with partial checksums. Asked for, UDP-tunnel
    // GSO too, with or without an outer UDP checksum (a kernel vxlan device checksums its
    // outer UDP by default: without the _CSUM bit the kernel would segment those before
    // handing them over). A kernel that does not know the bits refuses the whole set with
    // EINVAL (so userspace can probe), and then the plain set and the 10-byte header are used.
    unsigned long offload = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN;
    const char* what = "TUNSETOFFLOAD";
    int rc = -1;
    errno = EINVAL;
    if (tunnel_gso) {
      do rc = ioctl(fd, TUNSETOFFLOAD, offload | TUN_F_UDP_TUNNEL_GSO | TUN_F_UDP_TUNNEL_GSO_CSUM);
      while (rc < 0 && errno == EINTR);
      if (rc == 0) hdr_size = VNET_HDR_TUNNEL_LEN;
    }
    if (rc < 0 && errno == EINVAL) {
      do rc = ioctl(fd, TUNSETOFFLOAD, offload);
      while (rc < 0 && errno == EINTR);
      hdr_size = VNET_HDR_LEN;
    }
    if (rc == 0) {
      what = "TUNSETVNETHDRSZ";
      do rc = ioctl(fd, TUNSETVNETHDRSZ, &hdr_size);
      while (rc < 0 && errno == EINTR);
    }
    if (rc < 0) {
      int e = errno;
      close(fd);
      throw_errno(env, e, what, name);
      return NULL;
    }
  }
  char ifname[IFNAMSIZ];
  memcpy(ifname, ifr.ifr_name, IFNAMSIZ);
  ifname[IFNAMSIZ - 1] = 0;

  const char* failed = NULL;
  if (have_mac || mtu || txqlen || up) {
    int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (sock < 0) {
      err = errno;
      failed = "socket";
    }
    if (!failed && have_mac) {
      memset(&ifr, 0, sizeof ifr);
      memcpy(ifr.ifr_name, ifname, IFNAMSIZ);
      ifr.ifr_hwaddr.sa_family = ARPHRD_ETHER;
      memcpy(ifr.ifr_hwaddr.sa_data, mac, 6);
      if ((err = ifreq_ioctl(sock, SIOCSIFHWADDR, &ifr))) failed = "SIOCSIFHWADDR";
    }
    if (!failed && mtu) {
      memset(&ifr, 0, sizeof ifr);
      memcpy(ifr.ifr_name, ifname, IFNAMSIZ);
      ifr.ifr_mtu = (int)mtu;
      if ((err = ifreq_ioctl(sock, SIOCSIFMTU, &ifr))) failed = "SIOCSIFMTU";
    }
    if (!failed && txqlen) {
      memset(&ifr, 0, sizeof ifr);
      memcpy(ifr.ifr_name, ifname, IFNAMSIZ);
      ifr.ifr_qlen = (int)txqlen;
      if ((err = ifreq_ioctl(sock, SIOCSIFTXQLEN, &ifr))) failed = "SIOCSIFTXQLEN";
    }
    if (!failed && up) {
      memset(&ifr, 0, sizeof ifr);
      memcpy(ifr.ifr_name, ifname, IFNAMSIZ);
      if ((err = ifreq_ioctl(sock, SIOCGIFFLAGS, &ifr))) {
        failed = "SIOCGIFFLAGS";
      } else if (!(ifr.ifr_flags & IFF_UP)) {
        ifr.ifr_flags |= IFF_UP;
        if ((err = ifreq_ioctl(sock, SIOCSIFFLAGS, &ifr))) failed = "SIOCSIFFLAGS";
      }
    }
    if (sock >= 0) close(sock);
  }
  if (failed) {
    close(fd);
    throw_errno(env, err, failed, ifname);
    return NULL;
  }

  tap_t* t = (tap_t*)calloc(1, sizeof *t);
  if (!t) {
    close(fd);
    throw_errno(env, ENOMEM, "tapOpen", ifname);
    return NULL;
  }
  t->fd = fd;
  memcpy(t->name, ifname, IFNAMSIZ);

  napi_value obj, fd_v, name_v, hdr_v;
  if (napi_create_object(env, &obj) != napi_ok ||
      napi_create_int32(env, fd, &fd_v) != napi_ok ||
      napi_create_int32(env, hdr_size, &hdr_v) != napi_ok ||
      napi_create_string_utf8(env, ifname, NAPI_AUTO_LENGTH, &name_v) != napi_ok) {
    close(fd);
    free(t);
    throw_last_napi_error(env, "tapOpen");
    return NULL;
  }
  napi_property_descriptor props[] = {
      {"fd", NULL, NULL, NULL, NULL, fd_v, napi_enumerable, NULL},
      {"name", NULL, NULL, NULL, NULL, name_v, napi_enumerable, NULL},
      {"vnetHdrLen", NULL, NULL, NULL, NULL, hdr_v, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, obj, 3, props) != napi_ok ||
      napi_wrap(env, obj, t, tap_finalize, NULL, NULL) != napi_ok) {
    close(fd);
    free(t);
    throw_last_napi_error(env, "tapOpen");
    return NULL;
  }
  return obj;
}

static napi_value js_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK_NAPI(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  tap_t* t = get_tap(env, argc ? argv[0] : NULL);
  if (!t) return NULL;
  if (t->reader) reader_stop(t->reader);  // before close(): the fd leaves epoll first
  if (t->fd >= 0) {
    close(t->fd);
    t->fd = -1;
  }
  return NULL;
}

static napi_value js_is_open(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out;
  CHECK_NAPI(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  tap_t* t = get_tap(env, argc ? argv[0] : NULL);
  if (!t) return NULL;
  CHECK_NAPI(env, napi_get_boolean(env, t->fd >= 0, &out));
  return out;
}

static void set_num(napi_env env, napi_value obj, const char* key, uint64_t v) {
  napi_value n;
  napi_create_double(env, (double)v, &n);
  napi_set_named_property(env, obj, key, n);
}

static napi_value js_stats(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out;
  CHECK_NAPI(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  tap_t* t = get_tap(env, argc ? argv[0] : NULL);
  if (!t) return NULL;
  CHECK_NAPI(env, napi_create_object(env, &out));
  set_num(env, out, "rxFrames", t->rx_frames);
  set_num(env, out, "rxBatches", t->rx_batches);
  set_num(env, out, "rxTruncated", t->rx_truncated);
  set_num(env, out, "txFrames", t->tx_frames);
  set_num(env, out, "txEagain", t->tx_eagain);
  set_num(env, out, "rxUring", t->rx_uring);
  set_num(env, out, "txUring", t->tx_uring);
  return out;
}

// nowNs(): uv_hrtime() now; lastPollNs(): when the last readiness callback began. Both in ns
// on the monotonic clock, as doubles (exact below 2^53 ns, 104 days of uptime).
static napi_value js_now_ns(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value out;
  CHECK_NAPI(env, napi_create_double(env, (double)uv_hrtime(), &out));
  return out;
}

static napi_value js_last_poll_ns(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value out;
  CHECK_NAPI(env, napi_create_double(env, (double)last_poll_ns, &out));
  return out;
}

// lastReadNs(end): when the first read() of the last readBatch began (end false) or
// returned (end true), same clock.
static napi_value js_last_read_ns(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out;
  bool end = false;
  CHECK_NAPI(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc >= 1) napi_get_value_bool(env, argv[0], &end);
  CHECK_NAPI(env, napi_create_double(env, (double)(end ? last_read_end_ns : last_read_start_ns), &out));
  return out;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
      {"open", NULL, js_open, NULL, NULL, NULL, napi_default, NULL},
      {"startReading", NULL, js_start_reading, NULL, NULL, NULL, napi_default, NULL},
      {"readBatch", NULL, js_read_batch, NULL, NULL, NULL, napi_default, NULL},
      {"stopReading", NULL, js_stop_reading, NULL, NULL, NULL, napi_default, NULL},
      {"writeBatch", NULL, js_write_batch, NULL, NULL, NULL, napi_default, NULL},
      {"close", NULL, js_close, NULL, NULL, NULL, napi_default, NULL},
      {"isOpen", NULL, js_is_open, NULL, NULL, NULL, napi_default, NULL},
      {"stats", NULL, js_stats, NULL, NULL, NULL, napi_default, NULL},
      {"nowNs", NULL, js_now_ns, NULL, NULL, NULL, napi_default, NULL},
      {"lastPollNs", NULL, js_last_poll_ns, NULL, NULL, NULL, napi_default, NULL},
      {"lastReadNs", NULL, js_last_read_ns, NULL, NULL, NULL, napi_default, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok)
    return NULL;
  if (pcap_filter_register(env, exports) != napi_ok) return NULL;
  if (copy_ranges_register(env, exports) != napi_ok) return NULL;
  if (realtime_register(env, exports) != napi_ok) return NULL;
  if (aligned_buffer_register(env, exports) != napi_ok) return NULL;
  return exports;
}
