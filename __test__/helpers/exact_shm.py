#!/usr/bin/env python3
"""A *foreign* process that calls shm_open with the name EXACTLY as given, as node-shared-mem
2.x did on macOS and as a .NET or C creator calling shm_open("name") does. (Python's
_posixshmem.shm_open passes the string unchanged to libc; multiprocessing.shared_memory would
prepend '/'.) On Linux libc strips the leading '/', so "x" and "/x" are one object; on macOS
they are two.

  exact_shm.py create NAME SIZE HEX   O_CREAT|O_EXCL, ftruncate to SIZE, write HEX at offset 0
                                      (exit 3 if NAME exists)
  exact_shm.py read NAME LENGTH       print the first LENGTH bytes as hex (exit 2 if no NAME)
  exact_shm.py unlink NAME            remove NAME (exit 2 if there was none)
"""
import mmap
import os
import sys

import _posixshmem


def main(argv):
    cmd, name = argv[1], argv[2]
    try:
        if cmd == "create":
            size, data = int(argv[3]), bytes.fromhex(argv[4])
            fd = _posixshmem.shm_open(name, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
            try:
                os.ftruncate(fd, size)
                with mmap.mmap(fd, size) as m:
                    m[0:len(data)] = data
            finally:
                os.close(fd)
        elif cmd == "read":
            n = int(argv[3])
            fd = _posixshmem.shm_open(name, os.O_RDWR, 0)
            try:
                with mmap.mmap(fd, n) as m:
                    print(bytes(m[0:n]).hex())
            finally:
                os.close(fd)
        elif cmd == "unlink":
            _posixshmem.shm_unlink(name)
        else:
            raise SystemExit("unknown command " + cmd)
    except FileNotFoundError:
        return 2
    except FileExistsError:
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
