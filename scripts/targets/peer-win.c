/* A foreign (non-Node) Windows process for scripts/targets/target-checks.js under Wine: it
   creates or opens a named file mapping exactly as .NET's MemoryMappedFile.CreateNew /
   OpenExisting and Python's shared_memory do on Windows (CreateFileMappingW on the pagefile,
   OpenFileMappingW, MapViewOfFile), then serves line commands on stdin:
     r OFF LEN   -> prints the bytes as hex
     w OFF HEX   -> writes the bytes, prints "ok"
   and exits at end of input. A Windows mapping lives while a handle is open, so this process is
   kept running while the test needs the segment (there is no "create and exit" on Windows).
     peer-win.exe create NAME SIZE   (fails with the Win32 code as exit status if NAME exists)
     peer-win.exe open NAME
   Prints "ready SIZE" once mapped. Build: x86_64-w64-mingw32-gcc -municode -O2 peer-win.c */
#include <windows.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

int wmain(int argc, wchar_t **argv) {
  if (argc < 3) return 2;
  HANDLE h;
  SIZE_T size = 0;
  if (wcscmp(argv[1], L"create") == 0 && argc == 4) {
    unsigned long long n = wcstoull(argv[3], NULL, 10);
    h = CreateFileMappingW(INVALID_HANDLE_VALUE, NULL, PAGE_READWRITE, (DWORD)(n >> 32), (DWORD)n, argv[2]);
    if (h && GetLastError() == ERROR_ALREADY_EXISTS) { CloseHandle(h); return ERROR_ALREADY_EXISTS; }
  } else if (wcscmp(argv[1], L"open") == 0) {
    h = OpenFileMappingW(FILE_MAP_READ | FILE_MAP_WRITE, FALSE, argv[2]);
  } else {
    return 2;
  }
  if (!h) { fprintf(stderr, "error %lu\n", GetLastError()); return (int)GetLastError(); }
  unsigned char *p = MapViewOfFile(h, FILE_MAP_READ | FILE_MAP_WRITE, 0, 0, 0);
  if (!p) { fprintf(stderr, "MapViewOfFile error %lu\n", GetLastError()); return (int)GetLastError(); }
  MEMORY_BASIC_INFORMATION info;
  if (VirtualQuery(p, &info, sizeof info)) size = info.RegionSize;
  printf("ready %llu\n", (unsigned long long)size);
  fflush(stdout);
  static char line[1 << 16];
  while (fgets(line, sizeof line, stdin)) {
    unsigned long long off = 0, len = 0;
    char hex[sizeof line];
    if (sscanf(line, "r %llu %llu", &off, &len) == 2 && off + len <= size) {
      for (unsigned long long i = 0; i < len; i++) printf("%02x", p[off + i]);
      printf("\n");
    } else if (sscanf(line, "w %llu %65000s", &off, hex) == 2 && off + strlen(hex) / 2 <= size) {
      for (size_t i = 0; hex[2 * i] && hex[2 * i + 1]; i++) {
        unsigned int b;
        sscanf(hex + 2 * i, "%2x", &b);
        p[off + i] = (unsigned char)b;
      }
      printf("ok\n");
    } else {
      printf("bad\n");
    }
    fflush(stdout);
  }
  UnmapViewOfFile(p);
  CloseHandle(h);
  return 0;
}
