// The aligned-memory half of the nodeplane addon (aligned-buffer.c): adds alignedBuffer to the
// addon's exports. tap.c's module initialiser calls it.
#ifndef NODEPLANE_ALIGNED_BUFFER_H
#define NODEPLANE_ALIGNED_BUFFER_H
#include <node_api.h>

napi_status aligned_buffer_register(napi_env env, napi_value exports);

#endif
