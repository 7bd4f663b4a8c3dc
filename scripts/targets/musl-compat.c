/* Only for scripts/test-targets.sh's musl build. Debian ships no musl-built unwinder (rustup's
   musl target carries its own libunwind.a; Debian's rustc-web has no musl target libraries), so
   the build links Debian's LLVM libunwind.a (libunwind-14-dev), which was compiled against glibc
   with _FORTIFY_SOURCE and calls __fprintf_chk in its debug-log path. This gives it musl's
   fprintf, so that the .node needs nothing beyond musl's libc.so (checked symbol by symbol). */
#include <stdarg.h>
#include <stdio.h>
int __fprintf_chk(FILE *f, int flag, const char *fmt, ...) {
  (void)flag;
  va_list ap;
  va_start(ap, fmt);
  int n = vfprintf(f, fmt, ap);
  va_end(ap);
  return n;
}
