// The scheduling half of the nodeplane addon (realtime.c): adds setRealtime to the addon's
// exports. tap.c's module initialiser calls it.
#ifndef NODEPLANE_REALTIME_H
#define NODEPLANE_REALTIME_H
#include <node_api.h>

napi_status realtime_register(napi_env env, napi_value exports);

#endif
