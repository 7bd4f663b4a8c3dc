/* Wine 8 has no bcryptprimitives.dll, whose ProcessPrng Rust's std (>= 1.78) imports for
   HashMap seeds. This stand-in, found through WINEPATH by scripts/test-targets.sh only, forwards
   to advapi32's RtlGenRandom (SystemFunction036). Real Windows 10+ ships the real DLL. */
#include <windows.h>
BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);
__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
  while (len > 0) {
    ULONG n = len > 0x10000000 ? 0x10000000 : (ULONG)len;
    if (!SystemFunction036(data, n)) return FALSE;
    data += n;
    len -= n;
  }
  return TRUE;
}
