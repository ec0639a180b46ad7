// glibc's malloc_trim(3) for Node: the one call that gives the C
// allocator's free pages back to the system from anywhere in its heaps.
//
// A proxy's native memory (OpenSSL's per-connection state and buffers,
// socket and stream wraps) comes from glibc's malloc. When connections
// close, that memory is freed but stays resident: glibc returns pages by
// itself only from the top of a heap, and the long-lived allocations made
// in between pin the rest. malloc_trim(0) walks every arena and releases
// each whole free page (madvise MADV_DONTNEED). Node has no binding for
// it, hence this file; src/lib/malloc-trim.ts loads it, and the proxy's
// memory trim (src/lib/memory-trim.ts) calls it after V8's own collection.
//
// Built by tools/build-native.ts when the project is installed. Without a
// C compiler, or on a C library other than glibc, it is not built and the
// trim gives back V8's memory only.

#define NAPI_VERSION 8
#include <malloc.h>
#include <node_api.h>

/** mallocTrim(): true when memory was given back to the system. */
static napi_value MallocTrim(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value released;
  if (napi_get_boolean(env, malloc_trim(0) == 1, &released) != napi_ok) return NULL;
  return released;
}

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */) {
  napi_value fn;
  if (napi_create_function(env, "mallocTrim", NAPI_AUTO_LENGTH, MallocTrim, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "mallocTrim", fn) != napi_ok) return NULL;
  return exports;
}
