/* Loads the musl build of the addon into a musl process (musl's dynamic linker, RTLD_NOW: every
   symbol must resolve against musl's libc.so) and finds its Node-API entry point. This is a load
   check, not a run: there is no musl Node here to call it. */
#include <dlfcn.h>
#include <stdio.h>
int main(int argc, char **argv) {
  if (argc < 2) return 2;
  void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!h) { printf("dlopen failed: %s\n", dlerror()); return 1; }
  void *f = dlsym(h, "napi_register_module_v1");
  if (!f) { printf("napi_register_module_v1 missing: %s\n", dlerror()); return 1; }
  printf("loaded by musl: napi_register_module_v1 at %p\n", f);
  return 0;
}
