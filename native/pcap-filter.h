// The libpcap filter half of the nodeplane addon (pcap-filter.c): adds its functions to the
// addon's exports. tap.c's module initialiser calls it.
#ifndef NODEPLANE_PCAP_FILTER_H
#define NODEPLANE_PCAP_FILTER_H
#include <node_api.h>

napi_status pcap_filter_register(napi_env env, napi_value exports);

#endif
