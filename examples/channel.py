#!/usr/bin/env python3
"""A pure-Python peer of node-shared-mem's Channel (docs/channel.md, layout version 2). Linux.

mmap of /dev/shm/<name>; the futex through ctypes' syscall(); every shared word is accessed with
sequentially consistent atomics through libatomic (ships with GCC's runtime on every Linux
distribution: libatomic.so.1): __atomic_load_4 / __atomic_store_4 / fetch_add / compare_exchange,
as the contract requires (a plain load through a memoryview is not a seq-cst load: on AArch64 it
may be reordered before an earlier store). Liveness (§6): this handle's token is proved by an
exclusive flock on /dev/shm/<name>.p<token>, released when the process dies.

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
    channel.py churn NAME SECONDS              every call, 0.2 s timeouts, for SECONDS (the
                                               hostile-peer fuzzer); exit 3 on a bad error
"""
import ctypes
import errno
import fcntl
import json
import mmap
import os
import platform
import random
import stat
import struct
import sys
import time

MAGIC, VERSION, HEADER = 0x434D534E, 2, 1024
MAGIC_O, VERSION_O, CAPACITY_O, MODE_O, RECOVERY_O, ENDED_O = 0, 4, 8, 12, 16, 20
TAIL, LOCK, LOCK_SLEEPERS, HEAD, CONSUMER = 128, 132, 136, 256, 260
DATA_SEQ, CONSUMER_SLEEPERS, SPACE_SEQ, PRODUCER_SLEEPERS = 384, 388, 512, 516
MESSAGE, PADDING = 1, 2
SYS_FUTEX = {'x86_64': 202, 'aarch64': 98}[platform.machine()]
FUTEX_WAIT, FUTEX_WAKE, SEQ_CST = 0, 1, 5
PADDING_BUDGET = 4096   # padding records one call passes before it reports "nothing yet"
RECHECK = 5.0           # longest single wait that relies on a peer's wake-up (§4)
GARBAGE_RECHECK = 0.01  # the re-check period once a sleeper count was found negative
TRY_LOCK = 0.05         # how long try_send may wait for the claim lock
LOCK_DIR = '/dev/shm'

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
atomic = ctypes.CDLL('libatomic.so.1')
atomic.__atomic_load_4.argtypes = [ctypes.c_void_p, ctypes.c_int]
atomic.__atomic_load_4.restype = ctypes.c_int32
atomic.__atomic_store_4.argtypes = [ctypes.c_void_p, ctypes.c_int32, ctypes.c_int]
atomic.__atomic_store_4.restype = None
atomic.__atomic_compare_exchange_4.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_int32), ctypes.c_int32, ctypes.c_int, ctypes.c_int]
atomic.__atomic_compare_exchange_4.restype = ctypes.c_bool
atomic.__atomic_fetch_add_4.argtypes = [ctypes.c_void_p, ctypes.c_int32, ctypes.c_int]
atomic.__atomic_fetch_add_4.restype = ctypes.c_int32
# Module-level names: inside a class body Python would mangle `atomic.__atomic_…`.
_ld4, _st4, _cas4, _add4 = atomic.__atomic_load_4, atomic.__atomic_store_4, atomic.__atomic_compare_exchange_4, atomic.__atomic_fetch_add_4


class Timespec(ctypes.Structure):
    _fields_ = [('tv_sec', ctypes.c_long), ('tv_nsec', ctypes.c_long)]


def size_of(length):
    return (8 + length + 7) & ~7


def lock_path(name, token):
    return f'{LOCK_DIR}/{name.lstrip("/")}.p{token}'


def alive(name, token):
    """docs/channel.md §6: participant `token` is alive while its lock file is locked."""
    if not 1 <= token <= 0x7FFFFFFF:
        return False
    try:
        # O_NONBLOCK: a FIFO planted under that name would block open() for ever
        fd = os.open(lock_path(name, token), os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return False
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENXIO):
            return False  # a symlink (O_NOFOLLOW) or a socket: never a participant's file
        return True  # cannot tell: never reuse space of a participant that may be alive
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False  # no participant ever creates anything but a regular file
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    except OSError:
        return True
    finally:
        os.close(fd)


class ChannelError(Exception):
    def __init__(self, code, message):
        super().__init__(f'{code}: {message}')
        self.code = code


def _layout(name, why):
    return ChannelError('ERR_SHM_CHANNEL_LAYOUT', f'{name} is not a usable version-{VERSION} channel: {why}')


def _check_name_length(name):
    # NAME_MAX (255) less the longest lock-file suffix '.p2147483647' (docs/channel.md §6)
    n = len(name.lstrip('/').encode())
    if n > 255 - 12:
        raise ChannelError('ENAMETOOLONG', f'channel name of {n} bytes: at most {255 - 12}, so that its lock files fit in NAME_MAX')


class Channel:
    def __init__(self, name, _fd=None):
        _check_name_length(name)
        fd = _fd if _fd is not None else os.open(f'/dev/shm/{name.lstrip("/")}', os.O_RDWR)
        try:
            size = os.fstat(fd).st_size
            if size < HEADER:  # before mmap (an empty file cannot be mapped at all)
                raise _layout(name, f'the segment has {size} bytes')
            self.mm = mmap.mmap(fd, size)
        finally:
            os.close(fd)
        self.name = name.lstrip('/')
        self.base = ctypes.addressof(ctypes.c_char.from_buffer(self.mm))
        self.lock_fd = self.token = None
        self.producing = self.consuming = False
        self.stuck = None
        if len(self.mm) < HEADER:
            raise _layout(name, f'the segment has {len(self.mm)} bytes')
        deadline = time.monotonic() + 0.1
        while self.ld(MAGIC_O) == 0 and time.monotonic() < deadline:
            time.sleep(0.002)
        magic, version = self.ld(MAGIC_O) & 0xFFFFFFFF, self.ld(VERSION_O)
        if magic != MAGIC:
            raise _layout(name, f'magic {magic:#x}')
        if version != VERSION:
            raise _layout(name, f'layout version {version}; this peer speaks version {VERSION} only')
        cap, mode, recovery = self.ld(CAPACITY_O) & 0xFFFFFFFF, self.ld(MODE_O), self.ld(RECOVERY_O)
        used = (self.ld(TAIL) - self.ld(HEAD)) & 0xFFFFFFFF
        if not 256 <= cap <= 1 << 30 or cap & (cap - 1) or len(self.mm) < HEADER + cap or mode not in (0, 1) \
                or recovery < 1 or used > cap or used % 8:
            raise _layout(name, f'capacity {cap}, mode {mode}, recoveryMs {recovery}, tail - head {used}')
        self.cap, self.mask = cap, cap - 1
        self.one_to_one = mode == 1
        self.recovery = recovery / 1000

    @classmethod
    def create(cls, name, capacity, mode='many-to-one', recovery_ms=1000):
        if not 256 <= capacity <= 1 << 30 or capacity & (capacity - 1) or not 1 <= recovery_ms <= 0x7FFFFFFF:
            raise ValueError('capacity must be a power of two from 256 to 2^30, recovery_ms >= 1')
        _check_name_length(name)
        fd = os.open(f'/dev/shm/{name.lstrip("/")}', os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        os.ftruncate(fd, HEADER + capacity)
        mm = mmap.mmap(fd, HEADER + capacity)
        base = ctypes.addressof(ctypes.c_char.from_buffer(mm))
        for off, v in ((VERSION_O, VERSION), (CAPACITY_O, capacity), (MODE_O, 1 if mode == 'one-to-one' else 0),
                       (RECOVERY_O, recovery_ms), (MAGIC_O, MAGIC)):  # magic last: attachers wait for it
            _st4(base + off, _i32(v), SEQ_CST)
        return cls(name, fd)

    # -- words (all offsets in bytes; sequentially consistent) --
    def ld(self, off):
        return _ld4(self.base + off, SEQ_CST)

    def st(self, off, v):
        _st4(self.base + off, _i32(v), SEQ_CST)

    def add(self, off, v):
        return _add4(self.base + off, v, SEQ_CST)

    def cas(self, off, expected, new):
        e = ctypes.c_int32(expected)
        _cas4(self.base + off, ctypes.byref(e), new, SEQ_CST, SEQ_CST)
        return e.value  # the old value (== expected when swapped)

    def wait(self, off, expected, seconds):
        seconds = max(0.0, seconds)
        ts = Timespec(int(seconds), int((seconds % 1) * 1e9))
        libc.syscall(SYS_FUTEX, ctypes.c_void_p(self.base + off), FUTEX_WAIT, ctypes.c_int(expected), ctypes.byref(ts), None, 0)

    def wake(self, off, n=0x7FFFFFFF):
        libc.syscall(SYS_FUTEX, ctypes.c_void_p(self.base + off), FUTEX_WAKE, ctypes.c_int(n), None, None, 0)

    def _used(self, t, h):
        used = (t - h) & 0xFFFFFFFF
        if used > self.cap or used % 8:
            raise _layout(self.name, f'tail {t & 0xFFFFFFFF} - head {h & 0xFFFFFFFF} is {used}')
        return used

    # -- liveness (§6) --
    def _drop_inherited_token(self):
        if self.token is not None and self.token_pid != os.getpid():
            # Inherited across fork(): the lock (and token) is the parent's. Never act as the
            # parent's participant: two processes with one token would both be "the" lock holder.
            # Close only this copy of the descriptor: the parent keeps its flock and lock file.
            os.close(self.lock_fd)
            self.lock_fd = self.token = None
            self.producing = self.consuming = False

    def _token(self):
        self._drop_inherited_token()
        if self.token is None:
            for _ in range(64):
                token = random.SystemRandom().randint(1, 0x7FFFFFFF)
                path = lock_path(self.name, token)
                try:
                    fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
                except FileExistsError:
                    continue
                try:
                    os.fchmod(fd, 0o644)  # whatever the umask: peers of other uids must open it
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    st, now = os.fstat(fd), os.stat(path)  # still our file (not removed by a cleaner)?
                    if (st.st_dev, st.st_ino) != (now.st_dev, now.st_ino):
                        raise FileNotFoundError(path)
                except OSError:
                    os.close(fd)
                    continue
                self.lock_fd, self.token, self.token_pid = fd, token, os.getpid()
                break
            else:
                raise ChannelError('EEXIST', 'no free participant token')
        return self.token

    def _alive(self, token):
        return token == self.token or alive(self.name, token)

    def _register(self, word, role):
        me = self._token()
        while True:
            holder = self.cas(word, 0, me)
            if holder in (0, me):
                return
            if self._alive(holder):
                raise ChannelError('ERR_SHM_CHANNEL_BUSY', f'participant {holder} (alive) is the {role}')
            if self.cas(word, holder, me) == holder:
                return

    # -- producer (§3) --
    def _lock(self, deadline):
        me = self._token()
        spins = 0
        while True:
            holder = self.cas(LOCK, 0, me)
            if holder in (0, me):
                return True
            spins += 1
            if spins < 64:
                continue
            if not self._alive(holder):
                if self.cas(LOCK, holder, me) == holder:
                    return True
                continue
            left = 0.01 if deadline is None else min(0.01, deadline - time.monotonic())
            if left <= 0:
                return False
            self.add(LOCK_SLEEPERS, 1)
            if self.ld(LOCK) == holder:
                self.wait(LOCK, holder, left)
            self.add(LOCK_SLEEPERS, -1)

    def _unlock(self):
        self.st(LOCK, 0)
        if self.ld(LOCK_SLEEPERS) > 0:
            self.wake(LOCK, 1)

    def _wake_consumer(self):
        if self.ld(CONSUMER_SLEEPERS) > 0:
            self.add(DATA_SEQ, 1)
            self.wake(DATA_SEQ, 1)

    def _claim(self, n, size):
        """Claim (§3 steps 1-3): the ring index of a record published as claimed, or None when full."""
        while True:
            t = self.tail if self.one_to_one else self.ld(TAIL)
            h = self.ld(HEAD)
            self.head_seen = h  # send() sleeps only while head is still this
            used = self._used(t, h)
            i = t & self.mask
            to_end = self.cap - i
            if min(size, to_end) > self.cap - used:
                return None
            at = HEADER + i
            if size > to_end:  # wrap rule: padding to the end, then claim again at 0
                self.st(at + 4, to_end - 8)
                self.st(at, PADDING)
                self.tail = _i32(t + to_end)
                self.st(TAIL, self.tail)
                self._wake_consumer()
                continue
            self.st(at + 4, n)
            self.st(at, -self.token)
            self.tail = _i32(t + size)
            self.st(TAIL, self.tail)
            return i

    def _try_send(self, data, lock_deadline):
        n = len(data)
        if n > self.cap - 8:
            raise ValueError(f'message of {n} bytes > capacity - 8')
        if self.ld(ENDED_O):
            raise ChannelError('ERR_SHM_CHANNEL_ENDED', 'the channel has ended')
        size = size_of(n)
        self._token()
        if self.one_to_one:
            if not self.producing:
                self._register(LOCK, 'one-to-one producer')
                self.producing = True
                self.tail = self.ld(TAIL)
            i = self._claim(n, size)
        else:
            if not self._lock(lock_deadline):
                return False
            try:
                i = self._claim(n, size)
            finally:
                self._unlock()
        if i is None:
            return False
        at = HEADER + i
        if self.ld(ENDED_O):  # claimed after the end (§5): abort, so the send is refused, not lost
            self.st(at + 4, size - 8)
            self.st(at, PADDING)
            self._wake_consumer()
            raise ChannelError('ERR_SHM_CHANNEL_ENDED', 'the channel has ended')
        self.mm[at + 8:at + 8 + n] = data
        self.st(at, MESSAGE)
        self._wake_consumer()
        return True

    def try_send(self, data):
        return self._try_send(data, time.monotonic() + TRY_LOCK)

    def send(self, data, timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._try_send(data, deadline):
            left = RECHECK if deadline is None else deadline - time.monotonic()
            if left <= 0:
                raise ChannelError('ETIMEDOUT', 'send timed out')
            h = self.head_seen
            v = self.ld(SPACE_SEQ)
            before = self.add(PRODUCER_SLEEPERS, 1)
            if self.ld(HEAD) == h and not self.ld(ENDED_O):
                self.wait(SPACE_SEQ, v, min(left, GARBAGE_RECHECK if before < 0 else RECHECK))
            self.add(PRODUCER_SLEEPERS, -1)

    def end(self):
        self.st(ENDED_O, 1)
        for seq in (DATA_SEQ, SPACE_SEQ):
            self.add(seq, 1)
            self.wake(seq)

    # -- consumer (§4, §6) --
    def _next(self):
        """(index, length) of the next message, 'empty', 'blocked' or 'more' (budget spent)."""
        self._drop_inherited_token()  # a forked child is not its parent's consumer
        if not self.consuming:
            self._register(CONSUMER, 'consumer')
            self.consuming = True
            self.head = self.ld(HEAD)
        for _ in range(PADDING_BUDGET):
            h, t = self.head, self.ld(TAIL)
            if h == t:
                return 'empty'
            used = self._used(t, h)
            i = h & self.mask
            s, n = self.ld(HEADER + i), self.ld(HEADER + i + 4) & 0xFFFFFFFF
            if s in (MESSAGE, PADDING):
                if n > self.cap - i - 8 or size_of(n) > used:
                    raise _layout(self.name, f'record at {h & 0xFFFFFFFF} has length {n}')
                if s == MESSAGE:
                    return i, n
                self._release(size_of(n))
                continue
            if s >= 0:
                raise _layout(self.name, f'record at {h & 0xFFFFFFFF} has state {s}')
            now = time.monotonic()
            if self.stuck is None or self.stuck[:2] != (h, s):
                self.stuck = (h, s, now)
                return 'blocked'
            if now - self.stuck[2] < self.recovery or self._alive(-s):
                return 'blocked'
            self.cas(HEADER + i, s, PADDING)  # the producer died between claim and commit
        return 'more'

    def _release(self, size):
        self.head = _i32(self.head + size)
        self.st(HEAD, self.head)
        if self.ld(PRODUCER_SLEEPERS) > 0:
            self.add(SPACE_SEQ, 1)
            self.wake(SPACE_SEQ)

    def _take(self, i, n):
        data = self.mm[HEADER + i + 8:HEADER + i + 8 + n]
        self._release(size_of(n))
        return data

    def try_receive(self):
        r = self._next()
        return None if isinstance(r, str) else self._take(*r)

    def receive(self, timeout=None):
        """The next message (bytes), or None once the channel has ended and is drained."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            r = self._next()
            if not isinstance(r, str):
                return self._take(*r)
            if r == 'more':
                continue
            if r == 'empty' and self.ld(ENDED_O) and self._next() == 'empty':
                return None
            left = RECHECK if deadline is None else deadline - time.monotonic()
            if left <= 0:
                raise ChannelError('ETIMEDOUT', 'receive timed out')
            if r == 'blocked':
                left = min(left, self.recovery)
            v = self.ld(DATA_SEQ)
            before = self.add(CONSUMER_SLEEPERS, 1)
            r = self._next()
            # blocked: wait even once ended (a claim made before the end is still to be committed)
            if r == 'blocked' or (r == 'empty' and not self.ld(ENDED_O)):
                self.wait(DATA_SEQ, v, min(left, GARBAGE_RECHECK if before < 0 else RECHECK))
            self.add(CONSUMER_SLEEPERS, -1)

    def close(self):
        self._drop_inherited_token()  # never unlink the parent's lock file or clear its words
        if self.token is not None:
            if self.consuming:
                self.cas(CONSUMER, self.token, 0)
            if self.producing:
                self.cas(LOCK, self.token, 0)
            try:
                os.unlink(lock_path(self.name, self.token))
            except OSError:
                pass
            os.close(self.lock_fd)
            self.token = None
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


def churn(name, seconds):
    """Every entry point in turn while another process writes garbage: each returns by its timeout
    (or after bounded work) with a message of at most capacity - 8 bytes or a ChannelError."""
    ch = Channel(name)
    print('ready', flush=True)
    until, calls, worst, errors = time.monotonic() + seconds, 0, 0.0, {}
    data = bytes(min(40, ch.cap - 8))
    rng = random.Random(1)
    while time.monotonic() < until:
        op = rng.randrange(4)
        t0 = time.monotonic()
        try:
            m = None
            if op == 0:
                ch.try_send(data)
            elif op == 1:
                ch.send(data, timeout=0.2)
            elif op == 2:
                m = ch.try_receive()
            else:
                m = ch.receive(timeout=0.2)
            if m is not None and len(m) > ch.cap - 8:
                print(f'message of {len(m)} bytes', file=sys.stderr)
                sys.exit(3)
        except ChannelError as e:
            errors[e.code] = errors.get(e.code, 0) + 1
        except Exception as e:  # anything else is a bug
            print(f'unexpected {type(e).__name__}: {e}', file=sys.stderr)
            sys.exit(3)
        worst = max(worst, time.monotonic() - t0 - (0.2 if op % 2 else 0))
        calls += 1
    print(json.dumps({'calls': calls, 'worstOverMs': int(worst * 1000), 'errors': errors}))


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
            if len(m) < 8:
                bad += 1
                continue
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
    elif cmd == 'churn':
        churn(name, float(argv[2]))
    else:
        raise SystemExit(__doc__)


if __name__ == '__main__':
    main(sys.argv[1:])
