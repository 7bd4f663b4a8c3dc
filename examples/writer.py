#!/usr/bin/env python3
"""The demo's foreign writer: creates a POSIX shared-memory segment with Python's standard
library and keeps writing into it until its stdin closes, then removes it.

Layout: bytes 0..4 a little-endian uint32 counter, bytes 8.. a text line.
"""
import sys
import threading
import time
from multiprocessing import shared_memory, resource_tracker

name, size = sys.argv[1], int(sys.argv[2])
shm = shared_memory.SharedMemory(name=name, create=True, size=size)
stop = threading.Event()


def write():
    n = 0
    while not stop.is_set():
        n += 1
        line = f"python wrote tick {n} at {time.strftime('%H:%M:%S')}".encode().ljust(48, b" ")
        shm.buf[8:8 + len(line)] = line
        shm.buf[0:4] = n.to_bytes(4, "little")
        time.sleep(0.05)


threading.Thread(target=write, daemon=True).start()
print("ready", flush=True)
sys.stdin.read()  # until the demo closes our stdin
stop.set()
time.sleep(0.06)
shm.close()
shm.unlink()  # unregisters from the resource tracker too
