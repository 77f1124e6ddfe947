// The huge-page half of the nodeplane addon (huge-pages.c): adds adviseHugePages to the
// addon's exports. tap.c's module initialiser calls it.
#ifndef NODEPLANE_HUGE_PAGES_H
#define NODEPLANE_HUGE_PAGES_H
#include <node_api.h>

napi_status huge_pages_register(napi_env env, napi_value exports);

#endif
