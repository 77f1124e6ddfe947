// The copy half of the nodeplane addon (copy-ranges.c): adds copyRanges to the addon's
// exports. tap.c's module initialiser calls it.
#ifndef NODEPLANE_COPY_RANGES_H
#define NODEPLANE_COPY_RANGES_H
#include <node_api.h>

napi_status copy_ranges_register(napi_env env, napi_value exports);

#endif
