// setRealtime: the calling thread's scheduling policy, for `nodeplane run --realtime PRIO`.
//
// setRealtime(priority): priority 1-99 puts the calling thread (the packet thread: Node's
// main thread, where the TAPs are read and the graph runs) under SCHED_FIFO at that priority,
// as `chrt -f PRIO` would the whole process; 0 puts it back under SCHED_OTHER. Only this
// thread: V8's and libuv's helper threads (garbage collection, compilation, file system)
// stay ordinary, so they never delay a frame. Throws with the errno's text when the kernel
// refuses (EPERM without CAP_SYS_NICE or an RLIMIT_RTPRIO). The kernel's RT throttling
// (sched_rt_runtime_us, 95% by default) still leaves the rest of the machine a share. No
// policy lives here.

#ifndef NAPI_VERSION
#define NAPI_VERSION 8
#endif
#include <node_api.h>

#include <pthread.h>
#include <sched.h>
#include <string.h>

#include "realtime.h"

static napi_value js_set_realtime(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t priority = -1;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      napi_get_value_int32(env, argv[0], &priority) != napi_ok || priority < 0 || priority > 99) {
    napi_throw_range_error(env, NULL, "setRealtime(priority): 0 (ordinary) or 1 to 99 (SCHED_FIFO)");
    return NULL;
  }
  struct sched_param param;
  memset(&param, 0, sizeof param);
  param.sched_priority = priority;
  int err = pthread_setschedparam(pthread_self(), priority == 0 ? SCHED_OTHER : SCHED_FIFO, &param);
  if (err != 0) {
    napi_throw_error(env, NULL, strerror(err));
    return NULL;
  }
  return NULL;
}

napi_status realtime_register(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"setRealtime", NULL, js_set_realtime, NULL, NULL, NULL, napi_default, NULL},
  };
  return napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
