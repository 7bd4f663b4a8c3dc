#!/usr/bin/env python3
"""A *foreign* process for the tests: creates, reads, writes, holds and unlinks POSIX shared
memory with Python's multiprocessing.shared_memory (not with node-shared-mem).

Python <= 3.12 registers every segment it opens with its resource tracker and unlinks it when
the process exits; each command unregisters, so segments outlive this process unless the
command is meant to remove them.

  peer.py create NAME SIZE [OFFSET HEX]   create (exclusive), optionally write HEX at OFFSET
  peer.py read NAME OFFSET LENGTH         print the bytes as hex
  peer.py write NAME OFFSET HEX           write bytes
  peer.py hold NAME SIZE [OFFSET HEX]     create, print "ready", keep writing a counter at
                                          offset 0 (uint32 LE) every 10 ms until stdin closes,
                                          then unlink
  peer.py truncate NAME SIZE              ftruncate the segment to SIZE bytes (a misbehaving
                                          peer shrinking a segment others have mapped)
  peer.py unlink NAME                     remove the name (exit 1 if it did not exist)
"""
import os
import sys
import time
import threading
from multiprocessing import shared_memory, resource_tracker


def untrack(shm):
    try:
        resource_tracker.unregister(shm._name, "shared_memory")
    except Exception:
        pass


def open_existing(name):
    shm = shared_memory.SharedMemory(name=name)
    untrack(shm)
    return shm


def create_filled(name, argv):
    """Creates NAME of SIZE bytes (argv[3]) and writes HEX (argv[5]) at OFFSET (argv[4]) if given."""
    shm = shared_memory.SharedMemory(name=name, create=True, size=int(argv[3]))
    untrack(shm)
    if len(argv) > 5:
        data = bytes.fromhex(argv[5])
        off = int(argv[4])
        shm.buf[off:off + len(data)] = data
    return shm


def main(argv):
    cmd, name = argv[1], argv[2]
    if cmd == "create":
        shm = create_filled(name, argv)
        shm.close()
    elif cmd == "read":
        shm = open_existing(name)
        off, n = int(argv[3]), int(argv[4])
        print(bytes(shm.buf[off:off + n]).hex())
        shm.close()
    elif cmd == "write":
        shm = open_existing(name)
        off, data = int(argv[3]), bytes.fromhex(argv[4])
        shm.buf[off:off + len(data)] = data
        shm.close()
    elif cmd == "hold":
        shm = create_filled(name, argv)
        stop = threading.Event()

        def tick():
            n = 0
            while not stop.is_set():
                n += 1
                shm.buf[0:4] = n.to_bytes(4, "little")
                time.sleep(0.01)

        t = threading.Thread(target=tick, daemon=True)
        t.start()
        print("ready", flush=True)
        sys.stdin.read()
        stop.set()
        t.join()
        shm.close()
        shm.unlink()
    elif cmd == "truncate":
        # shared_memory has no resize; open the same object by name and ftruncate its fd.
        import _posixshmem
        fd = _posixshmem.shm_open("/" + name.lstrip("/"), os.O_RDWR, mode=0)
        try:
            os.ftruncate(fd, int(argv[3]))
        finally:
            os.close(fd)
    elif cmd == "unlink":
        try:
            shm = shared_memory.SharedMemory(name=name)
        except FileNotFoundError:
            sys.exit(1)
        shm.close()
        shm.unlink()  # also unregisters it from the resource tracker
    else:
        sys.exit("unknown command " + cmd)


if __name__ == "__main__":
    main(sys.argv)
