#!/usr/bin/env python3
"""The lifecycle suite's *foreign* process: POSIX shared memory made and touched by Python
(shm_open through Python's own _posixshmem, the module multiprocessing.shared_memory uses), never
by node-shared-mem.

  peer.py create NAME SIZE [OFFSET HEX]  create exclusively (O_CREAT|O_EXCL, 0600), size, fill
  peer.py read NAME OFFSET LENGTH        print the bytes as hex
  peer.py write NAME OFFSET HEX          write bytes
  peer.py slowcreate NAME DELAY_MS SIZE  shm_open(O_CREAT|O_EXCL), print "opened", sleep DELAY_MS,
                                         print "before <size it sees now> <ms since shm_open>",
                                         ftruncate to SIZE,
                                         write "5a5a5a5a" at 0, print "sized",
                                         then wait for stdin to close (0-byte window = DELAY_MS)
  peer.py holdempty NAME                 shm_open(O_CREAT|O_EXCL), print "opened", never size it,
                                         wait for stdin to close
  peer.py mkname NAME SIZE               create through multiprocessing.shared_memory (the way a
                                         Python user does; checks glibc accepts the name), unregister
  peer.py size NAME                      print the size (fstat) or "missing"
"""
import os
import sys
import time

import _posixshmem


def path(name):
    return "/" + name.lstrip("/")


def open_fd(name, flags, mode=0o600):
    return _posixshmem.shm_open(path(name), flags, mode)


def main(argv):
    cmd, name = argv[1], argv[2]
    if cmd == "create":
        fd = open_fd(name, os.O_CREAT | os.O_EXCL | os.O_RDWR)
        os.ftruncate(fd, int(argv[3]))
        if len(argv) > 5:
            os.pwrite(fd, bytes.fromhex(argv[5]), int(argv[4]))
        os.close(fd)
    elif cmd == "read":
        fd = open_fd(name, os.O_RDONLY)
        print(os.pread(fd, int(argv[4]), int(argv[3])).hex())
        os.close(fd)
    elif cmd == "write":
        fd = open_fd(name, os.O_RDWR)
        os.pwrite(fd, bytes.fromhex(argv[4]), int(argv[3]))
        os.close(fd)
    elif cmd == "slowcreate":
        fd = open_fd(name, os.O_CREAT | os.O_EXCL | os.O_RDWR)
        t0 = time.monotonic()
        print("opened", flush=True)
        time.sleep(int(argv[3]) / 1000)
        print("before %d %d" % (os.fstat(fd).st_size, (time.monotonic() - t0) * 1000), flush=True)
        os.ftruncate(fd, int(argv[4]))
        os.pwrite(fd, bytes.fromhex("5a5a5a5a"), 0)
        print("sized", flush=True)
        sys.stdin.read()
        os.close(fd)
    elif cmd == "holdempty":
        fd = open_fd(name, os.O_CREAT | os.O_EXCL | os.O_RDWR)
        print("opened", flush=True)
        sys.stdin.read()
        os.close(fd)
    elif cmd == "mkname":
        from multiprocessing import shared_memory, resource_tracker

        shm = shared_memory.SharedMemory(name=name, create=True, size=int(argv[3]))
        try:
            resource_tracker.unregister(shm._name, "shared_memory")
        except Exception:
            pass
        shm.buf[0:4] = bytes.fromhex("c0ffee11")
        shm.close()
        print("made", flush=True)
    elif cmd == "size":
        try:
            fd = open_fd(name, os.O_RDONLY)
        except FileNotFoundError:
            print("missing")
            return
        print(os.fstat(fd).st_size)
        os.close(fd)
    else:
        sys.exit("unknown command " + cmd)


if __name__ == "__main__":
    main(sys.argv)
