#!/usr/bin/env python3
"""A pure-Python peer of node-shared-mem's Channel (docs/channel.md, layout version 1). Linux.

mmap of /dev/shm/<name>; the futex through ctypes' syscall(); compare-and-swap, fetch-add and
sequentially consistent stores through libatomic (ships with GCC's runtime on every Linux
distribution: libatomic.so.1). Plain aligned 32-bit loads through a memoryview are atomic and
acquire on x86-64 and AArch64 as CPython performs them (one 4-byte memcpy).

    from channel import Channel
    ch = Channel.create('jobs', 1 << 20)     # or Channel('jobs') to attach
    ch.send(b'hello')                        # blocks while full; try_send() returns False
    ch.receive()                             # bytes, or None once ended and drained

CLI (used by the tests, the bench and the demo):
    channel.py create NAME CAPACITY [many-to-one|one-to-one] [RECOVERY_MS]
    channel.py produce NAME ID COUNT MIN MAX   test messages (id, seq, filler) of MIN..MAX bytes
    channel.py consume NAME COUNT              checks test messages, prints a JSON summary
    channel.py flood NAME COUNT SIZE           COUNT messages of SIZE bytes, as fast as it can
    channel.py demo NAME                       the demo producer (examples/channel-demo.js)
"""
import ctypes
import json
import mmap
import os
import platform
import struct
import sys
import time

MAGIC, VERSION, HEADER = 0x434D534E, 1, 1024
MAGIC_O, VERSION_O, CAPACITY_O, MODE_O, RECOVERY_O, ENDED_O = 0, 4, 8, 12, 16, 20
TAIL, LOCK, LOCK_SLEEPERS, HEAD, CONSUMER = 128, 132, 136, 256, 260
DATA_SEQ, CONSUMER_SLEEPERS, SPACE_SEQ, PRODUCER_SLEEPERS = 384, 388, 512, 516
MESSAGE, PADDING = 1, 2
SYS_FUTEX = {'x86_64': 202, 'aarch64': 98}[platform.machine()]
FUTEX_WAIT, FUTEX_WAKE, SEQ_CST = 0, 1, 5

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
atomic = ctypes.CDLL('libatomic.so.1')
atomic.__atomic_compare_exchange_4.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_int32), ctypes.c_int32, ctypes.c_int, ctypes.c_int]
atomic.__atomic_compare_exchange_4.restype = ctypes.c_bool
atomic.__atomic_fetch_add_4.argtypes = [ctypes.c_void_p, ctypes.c_int32, ctypes.c_int]
atomic.__atomic_fetch_add_4.restype = ctypes.c_int32
atomic.__atomic_exchange_4.argtypes = [ctypes.c_void_p, ctypes.c_int32, ctypes.c_int]
atomic.__atomic_exchange_4.restype = ctypes.c_int32
# Module-level names: inside a class body Python would mangle `atomic.__atomic_…`.
_cas4, _add4, _xchg4 = atomic.__atomic_compare_exchange_4, atomic.__atomic_fetch_add_4, atomic.__atomic_exchange_4


class Timespec(ctypes.Structure):
    _fields_ = [('tv_sec', ctypes.c_long), ('tv_nsec', ctypes.c_long)]


def size_of(length):
    return (8 + length + 7) & ~7


def alive(pid):
    """docs/channel.md §6: ESRCH or a zombie is dead, EPERM is alive."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        with open(f'/proc/{pid}/stat') as f:
            stat = f.read()
        return stat[stat.rindex(')') + 2] not in 'ZX'
    except OSError:
        return False


class ChannelError(Exception):
    def __init__(self, code, message):
        super().__init__(f'{code}: {message}')
        self.code = code


class Channel:
    def __init__(self, name, _fd=None):
        fd = _fd if _fd is not None else os.open(f'/dev/shm/{name.lstrip("/")}', os.O_RDWR)
        try:
            self.mm = mmap.mmap(fd, os.fstat(fd).st_size)
        finally:
            os.close(fd)
        self.w = memoryview(self.mm).cast('i')
        self.base = ctypes.addressof(ctypes.c_char.from_buffer(self.mm))
        self.pid = os.getpid()
        deadline = time.monotonic() + 0.1
        while self.w[0] == 0 and time.monotonic() < deadline:
            time.sleep(0.002)
        cap = self.w[CAPACITY_O >> 2]
        if self.w[0] != MAGIC or self.w[1] != VERSION or cap < 256 or cap & (cap - 1) or len(self.mm) < HEADER + cap:
            raise ChannelError('ERR_SHM_CHANNEL_LAYOUT', f'{name} is not a version-1 channel')
        self.cap, self.mask = cap, cap - 1
        self.one_to_one = self.w[MODE_O >> 2] == 1
        self.recovery = self.w[RECOVERY_O >> 2] / 1000
        self.producing = self.consuming = False
        self.stuck = None

    @classmethod
    def create(cls, name, capacity, mode='many-to-one', recovery_ms=1000):
        fd = os.open(f'/dev/shm/{name.lstrip("/")}', os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        os.ftruncate(fd, HEADER + capacity)
        mm = mmap.mmap(fd, HEADER + capacity)
        struct.pack_into('<IIIII', mm, 0, 0, VERSION, capacity, 1 if mode == 'one-to-one' else 0, recovery_ms)
        struct.pack_into('<I', mm, 0, MAGIC)  # last
        mm.close()
        return cls(name, fd)

    # -- words (all offsets in bytes) --
    def ld(self, off):
        return self.w[off >> 2]

    def st(self, off, v):  # sequentially consistent store
        _xchg4(self.base + off, v, SEQ_CST)

    def add(self, off, v):
        return _add4(self.base + off, v, SEQ_CST)

    def cas(self, off, expected, new):
        e = ctypes.c_int32(expected)
        _cas4(self.base + off, ctypes.byref(e), new, SEQ_CST, SEQ_CST)
        return e.value  # the old value (== expected when swapped)

    def wait(self, off, expected, seconds):
        ts = Timespec(int(seconds), int((seconds % 1) * 1e9))
        libc.syscall(SYS_FUTEX, ctypes.c_void_p(self.base + off), FUTEX_WAIT, ctypes.c_int(expected), ctypes.byref(ts), None, 0)

    def wake(self, off, n=0x7FFFFFFF):
        libc.syscall(SYS_FUTEX, ctypes.c_void_p(self.base + off), FUTEX_WAKE, ctypes.c_int(n), None, None, 0)

    def _sleep(self, seq, sleepers, still_blocked, seconds):
        v = self.ld(seq)
        self.add(sleepers, 1)
        if still_blocked():
            self.wait(seq, v, seconds)
        self.add(sleepers, -1)

    # -- producer (§3) --
    def _take(self, word):
        while True:
            holder = self.cas(word, 0, self.pid)
            if holder in (0, self.pid):
                return
            if holder > 0 and not alive(holder) and self.cas(word, holder, self.pid) == holder:
                return
            if word == CONSUMER or self.one_to_one:
                raise ChannelError('ERR_SHM_CHANNEL_BUSY', f'process {holder} holds the role')
            self.add(LOCK_SLEEPERS, 1)
            if self.ld(LOCK) == holder:
                self.wait(LOCK, holder, 0.01)
            self.add(LOCK_SLEEPERS, -1)

    def _wake_consumer(self):
        if self.ld(CONSUMER_SLEEPERS) > 0:
            self.add(DATA_SEQ, 1)
            self.wake(DATA_SEQ, 1)

    def try_send(self, data):
        n = len(data)
        if n > self.cap - 8:
            raise ValueError(f'message of {n} bytes > capacity - 8')
        if self.ld(ENDED_O):
            raise ChannelError('ERR_SHM_CHANNEL_ENDED', 'the channel has ended')
        size = size_of(n)
        if self.one_to_one and not self.producing:
            self._take(LOCK)
            self.producing = True
        while True:
            if not self.one_to_one:
                self._take(LOCK)
            t, h = self.ld(TAIL), self.ld(HEAD)
            self.head_seen = h  # send() sleeps only while head is still this
            i = t & self.mask
            to_end = self.cap - i
            free = self.cap - ((t - h) & 0xFFFFFFFF)
            if min(size, to_end) > free:
                if not self.one_to_one:
                    self._unlock()
                return False
            at = HEADER + i
            if size > to_end:  # wrap rule: padding to the end, then claim again at 0
                self.st(at + 4, to_end - 8)
                self.st(at, PADDING)
                self.st(TAIL, _i32(t + to_end))
                if not self.one_to_one:
                    self._unlock()
                self._wake_consumer()
                continue
            self.st(at + 4, n)
            if self.one_to_one:
                self.mm[at + 8:at + 8 + n] = data
                self.st(at, MESSAGE)
                self.st(TAIL, _i32(t + size))
            else:
                self.st(at, -self.pid)
                self.st(TAIL, _i32(t + size))
                self._unlock()
                self.mm[at + 8:at + 8 + n] = data
                self.st(at, MESSAGE)
            self._wake_consumer()
            return True

    def _unlock(self):
        self.st(LOCK, 0)
        if self.ld(LOCK_SLEEPERS) > 0:
            self.wake(LOCK, 1)

    def send(self, data, timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.try_send(data):
            left = 1.0 if deadline is None else deadline - time.monotonic()
            if left <= 0:
                raise ChannelError('ETIMEDOUT', 'send timed out')
            h = self.head_seen
            self._sleep(SPACE_SEQ, PRODUCER_SLEEPERS, lambda: self.ld(HEAD) == h and not self.ld(ENDED_O), min(left, 1.0))

    def end(self):
        self.st(ENDED_O, 1)
        for seq in (DATA_SEQ, SPACE_SEQ):
            self.add(seq, 1)
            self.wake(seq)

    # -- consumer (§4, §6) --
    def _next(self):
        """(index, length) of the next message, 'empty' or 'blocked'."""
        if not self.consuming:
            self._take(CONSUMER)
            self.consuming = True
        while True:
            h = self.ld(HEAD)
            if h == self.ld(TAIL):
                return 'empty'
            i = h & self.mask
            s, n = self.ld(HEADER + i), self.ld(HEADER + i + 4)
            if s == MESSAGE:
                return i, n
            if s == PADDING:
                self._release(h, n)
                continue
            if s >= 0 or size_of(n) > self.cap - i:
                raise ChannelError('ERR_SHM_CHANNEL_LAYOUT', f'record state {s} length {n} at {h}')
            now = time.monotonic()
            if self.stuck is None or self.stuck[:2] != (h, s):
                self.stuck = (h, s, now)
                return 'blocked'
            if now - self.stuck[2] < self.recovery or alive(-s):
                return 'blocked'
            self.cas(HEADER + i, s, PADDING)  # the producer died between claim and commit

    def _release(self, h, n):
        self.st(HEAD, _i32(h + size_of(n)))
        if self.ld(PRODUCER_SLEEPERS) > 0:
            self.add(SPACE_SEQ, 1)
            self.wake(SPACE_SEQ)

    def try_receive(self):
        r = self._next()
        if isinstance(r, str):
            return None
        i, n = r
        data = self.mm[HEADER + i + 8:HEADER + i + 8 + n]
        self._release(self.ld(HEAD), n)
        return data

    def receive(self, timeout=None):
        """The next message (bytes), or None once the channel has ended and is drained."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            r = self._next()
            if not isinstance(r, str):
                i, n = r
                data = self.mm[HEADER + i + 8:HEADER + i + 8 + n]
                self._release(self.ld(HEAD), n)
                return data
            if r == 'empty' and self.ld(ENDED_O) and self._next() == 'empty':
                return None
            left = 1.0 if deadline is None else deadline - time.monotonic()
            if left <= 0:
                raise ChannelError('ETIMEDOUT', 'receive timed out')
            cap = self.recovery if r == 'blocked' else 1.0
            self._sleep(DATA_SEQ, CONSUMER_SLEEPERS, lambda: isinstance(self._next(), str) and not self.ld(ENDED_O), min(left, cap))

    def close(self):
        if self.consuming:
            self.cas(CONSUMER, self.pid, 0)
        if self.producing:
            self.cas(LOCK, self.pid, 0)
        self.w.release()
        try:
            self.mm.close()
        except BufferError:  # the ctypes export of the base address pins it until exit
            pass


def _i32(v):
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >= 1 << 31 else v


def test_message(pid_id, seq, n):
    body = bytes((pid_id * 7 + seq * 13 + k) & 0xFF for k in range(8, n))
    return struct.pack('<II', pid_id, seq) + body


def main(argv):
    cmd, name = argv[0], argv[1]
    if cmd == 'create':
        Channel.create(name, int(argv[2]), argv[3] if len(argv) > 3 else 'many-to-one', int(argv[4]) if len(argv) > 4 else 1000).close()
    elif cmd == 'produce':
        pid_id, count, lo, hi = map(int, argv[2:6])
        ch = Channel(name)
        x = pid_id * 2654435761 & 0xFFFFFFFF
        for seq in range(count):
            x = (x * 1103515245 + 12345) & 0x7FFFFFFF
            ch.send(test_message(pid_id, seq, lo + x % (hi - lo + 1)))
        ch.close()
        print(json.dumps({'sent': count, 'last_ms': int(time.time() * 1000)}))
    elif cmd == 'consume':
        count = int(argv[2])
        ch = Channel(name)
        seqs, bad = {}, 0
        for _ in range(count):
            m = ch.receive(timeout=60)
            pid_id, seq = struct.unpack_from('<II', m)
            if m != test_message(pid_id, seq, len(m)) or seqs.get(pid_id, -1) + 1 != seq:
                bad += 1
            seqs[pid_id] = seq
        ch.close()
        print(json.dumps({'received': count, 'bad': bad, 'last': seqs}))
    elif cmd == 'flood':
        count, size = int(argv[2]), int(argv[3])
        ch, data = Channel(name), bytes(size)
        for _ in range(count):
            ch.send(data)
        ch.close()
    elif cmd == 'demo':
        ch = Channel(name)
        print('ready', flush=True)
        for k in range(10):
            ch.send(json.dumps({'from': 'python', 'pid': os.getpid(), 'n': k, 'sqrt': k ** 0.5}).encode())
            time.sleep(0.05)
        ch.end()
        ch.close()
    else:
        raise SystemExit(__doc__)


if __name__ == '__main__':
    main(sys.argv[1:])
