// Force-included (`g++ -include`) into a second build of node-shared-mem 2.1 for the bench:
// every napi_create_external_arraybuffer answers napi_no_external_buffers_allowed, exactly what
// Node-API answers inside Electron's V8 memory cage, so 2.1 takes its caged path (a V8-owned
// buffer, `requiresCopy === true`, copyFrom/copyTo do their memcpy) on plain Node. This is
// what NODE_SHARED_MEM_FORCE_COPY=1 does for this package; nothing else in 2.1 changes.
#pragma once
#include <node_api.h>

static inline napi_status nsm_bench_no_external_buffers(napi_env, void*, size_t, napi_finalize, void*, napi_value*) {
  return napi_no_external_buffers_allowed;
}
#define napi_create_external_arraybuffer nsm_bench_no_external_buffers
