//! [`Region`]: a mapping plus its segment handle, usable from several threads, closable while
//! another thread is blocked in [`Region::wait`].

use std::fmt;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::{fault, futex, Access, Error, Mapping, Segment, WaitOutcome};

/// Why a [`Region`] operation was refused.
#[derive(Debug)]
#[non_exhaustive]
pub enum RegionError {
    /// [`Region::close`] has run.
    Closed,
    /// The byte range is not inside the mapping.
    OutOfRange,
    /// An `Int32` operation at a byte offset that is not a multiple of 4.
    Misaligned,
    /// A write (copy or atomic) on a read-only region.
    ReadOnly,
    /// The segment is now smaller than the range the operation needs: a peer shrank it
    /// (`ftruncate`). Nothing was copied or changed, unless the truncation happened during
    /// the copy itself (then a prefix of the range may have been copied).
    Shrunk {
        /// The segment's size now; `>= needed` when it covers the range again although the
        /// access kept faulting: a peer shrank and regrew it faster than the access could be
        /// retried, or the pages could not be provided where that cannot be told (a read-only
        /// handle on a full tmpfs).
        size: u64,
        /// The end of the range the operation needed.
        needed: u64,
    },
    /// A guarded access kept faulting although the segment covers its range: not a shrink but
    /// memory the OS could not provide for the range's pages (a full tmpfs, e.g. a container's
    /// small `/dev/shm`, or memory not available). A write may have copied a prefix.
    Unbacked {
        /// The end of the range the operation needed.
        needed: u64,
    },
    /// The caller's `interrupted` check said stop (see [`Region::wait_interruptible`]).
    Interrupted,
    /// An OS call failed.
    Os(Error),
}

impl fmt::Display for RegionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegionError::Closed => f.write_str("the shared memory is closed"),
            RegionError::OutOfRange => f.write_str("the range is outside the mapping"),
            RegionError::Misaligned => f.write_str("the byte offset is not a multiple of 4"),
            RegionError::ReadOnly => f.write_str("the shared memory was opened read-only"),
            RegionError::Shrunk { size, needed } if size >= needed => write!(
                f,
                "the pages up to byte {needed} could not be accessed although the segment is {size} bytes long: tmpfs full or out of memory, or it shrank and grew back while mapped"
            ),
            RegionError::Shrunk { size, needed } => write!(
                f,
                "the segment shrank to {size} bytes while mapped; bytes up to {needed} are gone"
            ),
            RegionError::Unbacked { needed } => write!(
                f,
                "the segment covers byte {needed} but its memory could not be provided (tmpfs full or out of memory)"
            ),
            RegionError::Interrupted => f.write_str("the wait was interrupted"),
            RegionError::Os(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for RegionError {}

/// A shared mapping with an explicit, thread-safe close.
///
/// Any number of threads may call its methods at once. [`close`](Self::close) marks the region
/// closed, wakes every thread blocked in [`wait`](Self::wait) on it, waits for operations
/// already running to leave, then releases the segment handle and (unless told to keep it)
/// unmaps. Operations that start after `close` fail with [`RegionError::Closed`]; none of
/// them ever touches unmapped memory.
pub struct Region {
    ptr: NonNull<u8>,
    len: usize,
    access: Access,
    /// Where JavaScript (or any code that may write) gets to see the bytes: the shared mapping
    /// itself when read-write; a private copy-on-write view of a read-only segment; `None`
    /// when the OS refused such a view.
    js_ptr: Option<NonNull<u8>>,
    closed: AtomicBool,
    /// Operations between `enter` and the end of their guard.
    in_flight: AtomicUsize,
    /// Byte offsets that threads of this region are blocked on, one entry per waiter.
    waiting: Mutex<Vec<usize>>,
    /// Taken (closed) only by `close`, after `closed` is set and no operation is in flight; read
    /// only by operations, inside their `enter` guard. So no lock is needed (see `segment()`).
    segment: std::cell::UnsafeCell<Option<Segment>>,
    /// The shared mapping (every native operation uses it) and, for read-only segments, the
    /// copy-on-write view behind `js_ptr`.
    mapping: Mutex<Option<(Mapping, Option<Mapping>)>>,
}

// SAFETY: `ptr` points into `mapping`, which is only unmapped by `close` after every operation
// that could use `ptr` has left (the `in_flight` protocol), or by Drop; all access to the bytes
// is through raw copies and atomics. `segment` is shared read-only by operations and taken by
// `close` only once none is in flight (same protocol, see `Region::segment`). The rest of the
// fields are Sync on their own.
unsafe impl Send for Region {}
// SAFETY: as for Send.
unsafe impl Sync for Region {}

struct Guard<'a>(&'a Region);

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Region {
    /// Maps `len` bytes (default: all) of `segment` shared, and for a read-only segment also a
    /// copy-on-write view for [`js_ptr`](Self::js_ptr) (left out if the OS refuses it).
    ///
    /// # Safety
    /// The contract of [`Segment::map`]: no process may truncate the segment below the mapped
    /// length while the region is mapped, with one exception. The copies, atomics, `wait` and
    /// `notify` of this type fail with [`RegionError::Shrunk`] instead of faulting: on Linux
    /// x86_64/aarch64 through a SIGBUS/SIGSEGV handler that recovers faults inside them
    /// (`fault.rs`; installed, or re-installed on top of a later one, here), elsewhere on Unix
    /// by re-checking the size before a copy (where a truncation racing the check, or one
    /// under the atomics and `wait`, still raises SIGBUS). Bytes the caller reads through
    /// [`as_ptr`](Self::as_ptr)/[`js_ptr`](Self::js_ptr) are never guarded.
    pub unsafe fn open(segment: Segment, len: Option<u64>) -> Result<Region, Error> {
        // `false` (no slot left to chain a handler installed over ours) is the binding's to
        // report, from `reinstall_fault_guard`.
        let _ = fault::install(false);
        // SAFETY: the caller upholds `Segment::map`'s contract for the region's whole life.
        let mapping = unsafe { segment.map(len)? };
        let view = match segment.access() {
            Access::ReadWrite => None,
            Access::ReadOnly => {
                // SAFETY: as above, for the same length.
                unsafe { segment.map_copy_on_write(Some(mapping.len() as u64)) }.ok()
            }
        };
        let js_ptr = match segment.access() {
            Access::ReadWrite => Some(mapping.as_ptr()),
            Access::ReadOnly => view.as_ref().map(Mapping::as_ptr),
        };
        Ok(Region {
            ptr: mapping.as_ptr(),
            len: mapping.len(),
            access: mapping.access(),
            js_ptr,
            closed: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            waiting: Mutex::new(Vec::new()),
            segment: std::cell::UnsafeCell::new(Some(segment)),
            mapping: Mutex::new(Some((mapping, view))),
        })
    }

    /// Start of the shared mapping. Valid until the region is unmapped by `close(true)` or
    /// drop. Writable only for read-write regions.
    pub fn as_ptr(&self) -> NonNull<u8> {
        self.ptr
    }

    /// Start of `len()` bytes that may be both read and written by code this crate does not
    /// control (a JavaScript `ArrayBuffer`): the shared mapping of a read-write region, a
    /// private copy-on-write view of a read-only one (writes stay local), or `None` when no
    /// such view could be made. Valid for as long as [`as_ptr`](Self::as_ptr).
    pub fn js_ptr(&self) -> Option<NonNull<u8>> {
        self.js_ptr
    }

    /// Bytes mapped.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always `false`: a region is never empty.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The access the region was mapped with.
    pub fn access(&self) -> Access {
        self.access
    }

    /// Whether [`close`](Self::close) has run.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    fn enter(&self) -> Result<Guard<'_>, RegionError> {
        // Dekker-style with `close`: either `close` sees this increment, or this load sees
        // `closed == true`. Both are SeqCst, so they cannot both miss each other.
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let guard = Guard(self);
        if self.closed.load(Ordering::SeqCst) {
            return Err(RegionError::Closed);
        }
        Ok(guard)
    }

    fn check_range(&self, offset: usize, len: usize) -> Result<(), RegionError> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(RegionError::OutOfRange),
        }
    }

    /// The segment handle, for an operation inside its `enter` guard.
    fn segment(&self, _guard: &Guard<'_>) -> Option<&Segment> {
        // SAFETY: `close` replaces the cell's content only after setting `closed` and seeing no
        // operation in flight; a guard is an operation in flight that saw `closed == false`
        // (the Dekker pair in `enter`/`close`), so the content cannot change while it is held.
        unsafe { (*self.segment.get()).as_ref() }
    }

    /// Fails with [`RegionError::Shrunk`] when the segment no longer covers `..end`. Only
    /// where segments can shrink and no fault guard exists (`fault::GUARDED`): one syscall.
    fn check_size(&self, guard: &Guard<'_>, end: usize) -> Result<(), RegionError> {
        if !crate::os::SEGMENTS_CAN_SHRINK || fault::GUARDED {
            return Ok(());
        }
        let Some(segment) = self.segment(guard) else {
            return Err(RegionError::Closed);
        };
        let size = segment.size().map_err(RegionError::Os)?;
        if (end as u64) > size {
            return Err(RegionError::Shrunk {
                size,
                needed: end as u64,
            });
        }
        Ok(())
    }

    /// What a fault (or a futex `EFAULT`) on the range `..end` means: `Err(Shrunk)` when the
    /// segment no longer covers `..end` (the usual case); `Ok(size)` when it covers it again (a
    /// peer shrank and regrew it since the access faulted): the caller retries the access.
    /// One `fstat`/`lseek`, on this error path only.
    fn after_fault(&self, guard: &Guard<'_>, end: usize) -> Result<u64, RegionError> {
        let Some(segment) = self.segment(guard) else {
            return Err(RegionError::Closed);
        };
        match segment.size() {
            Ok(size) if size < end as u64 => Err(RegionError::Shrunk {
                size,
                needed: end as u64,
            }),
            Ok(size) => Ok(size),
            Err(e) => Err(RegionError::Os(e)),
        }
    }

    /// Runs a guarded access to `start..end`. A fault on a segment that no longer covers `..end`
    /// is [`RegionError::Shrunk`]; while it covers `..end` again (shrunk and regrown by a peer in
    /// between) the access is retried, up to [`FAULT_RETRIES`] times (it then succeeds on the
    /// regrown segment). One that faulted every time although the segment covered the range is
    /// [`RegionError::Unbacked`] if the OS cannot provide the pages (a full tmpfs: see
    /// [`cannot_provide`](Self::cannot_provide)), else tried once more and then `Shrunk` with
    /// the size it grew back to (`size >= needed`).
    /// A retry is safe: a faulting atomic had no effect, and a copy copies the same bytes again.
    fn guarded<T>(
        &self,
        guard: &Guard<'_>,
        start: usize,
        end: usize,
        mut access: impl FnMut() -> Result<T, fault::Fault>,
    ) -> Result<T, RegionError> {
        for _ in 0..FAULT_RETRIES {
            match access() {
                Ok(v) => return Ok(v),
                Err(fault::Fault) => self.after_fault(guard, end)?,
            };
        }
        // Covered after every fault: a peer shrinking and regrowing it faster than the
        // retries, or pages the OS cannot provide.
        if self.cannot_provide(guard, start, end)? {
            return Err(RegionError::Unbacked { needed: end as u64 });
        }
        match access() {
            Ok(v) => Ok(v),
            Err(fault::Fault) => Err(self.fault_error(guard, end)),
        }
    }

    /// Whether the OS refuses to provide the pages of `start..end` (`ENOSPC`/`ENOMEM`: a full
    /// tmpfs, the memory limit), asked after accesses to them faulted [`FAULT_RETRIES`] times
    /// although the segment covered them each time. Otherwise they are now provided (or
    /// cannot be asked for: a read-only handle, no such call) and the fault was a racing peer.
    /// One `fallocate`, on this error path only.
    fn cannot_provide(
        &self,
        guard: &Guard<'_>,
        start: usize,
        end: usize,
    ) -> Result<bool, RegionError> {
        let Some(segment) = self.segment(guard) else {
            return Err(RegionError::Closed);
        };
        Ok(matches!(
            segment.provide(start as u64, (end - start) as u64),
            Some(Err(Error::Os { ref source, .. }))
                if matches!(crate::error_code(source), "ENOSPC" | "ENOMEM")
        ))
    }

    /// The error for a fault on `..end` seen after the access (see [`guarded`](Self::guarded)).
    fn fault_error(&self, guard: &Guard<'_>, end: usize) -> RegionError {
        match self.after_fault(guard, end) {
            Err(e) => e,
            Ok(size) => RegionError::Shrunk {
                size,
                needed: end as u64,
            },
        }
    }

    /// Copies `dst.len()` bytes at `offset` out of the segment. A peer that shrank the segment
    /// below the range yields [`RegionError::Shrunk`] instead of SIGBUS (see [`open`](Self::open)).
    pub fn read(&self, offset: usize, dst: &mut [u8]) -> Result<(), RegionError> {
        let guard = self.enter()?;
        self.check_range(offset, dst.len())?;
        if dst.is_empty() {
            return Ok(());
        }
        self.check_size(&guard, offset + dst.len())?;
        // SAFETY: the range is inside the mapping (checked) and not empty, the mapping stays
        // mapped while the guard is held, a fault on it becomes `Err` (or the size was checked
        // just now where no guard exists), and `dst` is a separate buffer owned by the caller.
        self.guarded(&guard, offset, offset + dst.len(), || unsafe {
            fault::copy_from_segment(self.ptr.as_ptr().add(offset), dst.as_mut_ptr(), dst.len())
        })
    }

    /// [`read`](Self::read), but through the segment handle (`pread`) rather than the mapping
    /// where the OS allows it (Linux): a page of the segment that nobody wrote (a hole of a
    /// sparse tmpfs file) reads as zeros without being allocated, whereas reading it through
    /// the mapping commits it. For filling a whole private copy at once. A segment shorter than
    /// the range is [`RegionError::Shrunk`] (retried while it grows back, as in `read`); the
    /// bytes before its end may then have been copied. Elsewhere it is `read`.
    pub fn read_unmapped(&self, offset: usize, dst: &mut [u8]) -> Result<(), RegionError> {
        let guard = self.enter()?;
        self.check_range(offset, dst.len())?;
        let Some(segment) = self.segment(&guard) else {
            return Err(RegionError::Closed);
        };
        let end = offset + dst.len();
        let mut done = 0;
        let mut retries = 0;
        while done < dst.len() {
            match segment.read_at((offset + done) as u64, &mut dst[done..]) {
                None => {
                    drop(guard);
                    return self.read(offset, dst);
                }
                Some(Ok(0)) => {
                    // The end of the segment: shrunk, or regrown since (then read on).
                    let size = self.after_fault(&guard, end)?;
                    retries += 1;
                    if retries >= FAULT_RETRIES {
                        return Err(RegionError::Shrunk {
                            size,
                            needed: end as u64,
                        });
                    }
                }
                Some(Ok(n)) => done += n,
                Some(Err(e)) => return Err(RegionError::Os(e)),
            }
        }
        Ok(())
    }

    /// Copies `src` into the segment at `offset`, with the same size re-check as [`read`](Self::read).
    pub fn write(&self, offset: usize, src: &[u8]) -> Result<(), RegionError> {
        let guard = self.enter()?;
        if self.access != Access::ReadWrite {
            return Err(RegionError::ReadOnly);
        }
        self.check_range(offset, src.len())?;
        if src.is_empty() {
            return Ok(());
        }
        self.check_size(&guard, offset + src.len())?;
        // SAFETY: as in `read`; the mapping is shared and writable (read-write access checked).
        self.guarded(&guard, offset, offset + src.len(), || unsafe {
            fault::copy_to_segment(src.as_ptr(), self.ptr.as_ptr().add(offset), src.len())
        })
    }

    /// Checks the bounds of an `Int32` operation at `byte_offset`.
    pub fn check_i32(&self, byte_offset: usize) -> Result<(), RegionError> {
        if !byte_offset.is_multiple_of(4) {
            return Err(RegionError::Misaligned);
        }
        self.check_range(byte_offset, 4)
    }

    fn atomic(&self, byte_offset: usize) -> Result<&AtomicI32, RegionError> {
        self.check_i32(byte_offset)?;
        // SAFETY: offset is 4-aligned and in range (checked); the mapping is page-aligned, so
        // the address is 4-aligned; callers hold a guard, so the bytes stay mapped while the
        // returned reference is used. Only atomic access is made through it.
        Ok(unsafe { AtomicI32::from_ptr(self.ptr.as_ptr().add(byte_offset).cast()) })
    }

    fn writable(&self) -> Result<(), RegionError> {
        if self.access == Access::ReadWrite {
            Ok(())
        } else {
            Err(RegionError::ReadOnly)
        }
    }

    /// Sequentially consistent load of the `Int32` at `byte_offset`. This and the other
    /// atomics fail with [`RegionError::Shrunk`] where the segment shrank below the word (see
    /// [`open`](Self::open) for where that is guarded).
    pub fn load(&self, byte_offset: usize) -> Result<i32, RegionError> {
        let guard = self.enter()?;
        let p = self.atomic(byte_offset)?.as_ptr();
        // SAFETY: `p` is an aligned word of the mapping (checked by `atomic`), mapped while the
        // guard is held; a fault on it becomes `Err`.
        self.guarded(&guard, byte_offset, byte_offset + 4, || unsafe {
            fault::load(p)
        })
    }

    /// Sequentially consistent store; returns `value`, as `Atomics.store` does.
    pub fn store(&self, byte_offset: usize, value: i32) -> Result<i32, RegionError> {
        let guard = self.enter()?;
        let p = self.atomic(byte_offset)?.as_ptr();
        self.writable()?;
        // SAFETY: as in `load`; the mapping is writable (checked).
        self.guarded(&guard, byte_offset, byte_offset + 4, || unsafe {
            fault::store(p, value)
        })?;
        Ok(value)
    }

    /// Wrapping add; returns the old value.
    pub fn add(&self, byte_offset: usize, delta: i32) -> Result<i32, RegionError> {
        let guard = self.enter()?;
        let p = self.atomic(byte_offset)?.as_ptr();
        self.writable()?;
        // SAFETY: as in `store`.
        self.guarded(&guard, byte_offset, byte_offset + 4, || unsafe {
            fault::add(p, delta)
        })
    }

    /// Compare-and-exchange; returns the old value (equal to `expected` when it swapped).
    pub fn compare_exchange(
        &self,
        byte_offset: usize,
        expected: i32,
        replacement: i32,
    ) -> Result<i32, RegionError> {
        let guard = self.enter()?;
        let p = self.atomic(byte_offset)?.as_ptr();
        self.writable()?;
        // SAFETY: as in `store`.
        self.guarded(&guard, byte_offset, byte_offset + 4, || unsafe {
            fault::compare_exchange(p, expected, replacement)
        })
    }

    /// Blocks the calling thread while the `Int32` at `byte_offset` equals `expected`, until a
    /// notify (from any process), the timeout (`None`: forever), or `close`.
    ///
    /// Returns [`WaitOutcome::NotEqual`] at once when the value differs. As with any futex, a
    /// wake may be spurious: callers re-check the value in a loop.
    pub fn wait(
        &self,
        byte_offset: usize,
        expected: i32,
        timeout: Option<Duration>,
    ) -> Result<WaitOutcome, RegionError> {
        self.wait_interruptible(byte_offset, expected, timeout, None, &mut || false)
    }

    /// [`wait`](Self::wait) that can be abandoned. After every wake-up from the kernel
    /// `interrupted()` is asked whether to give up ([`RegionError::Interrupted`]); a canceller
    /// sets what `interrupted` reads, then calls [`wake_waiters`](Self::wake_waiters) until the
    /// waiter has left (a waiter still spinning is not in the kernel yet).
    ///
    /// With `slice: Some(d)` the kernel sleep is also cut into slices of at most `d` and
    /// `interrupted()` is asked between two, for callers that nobody can wake (a worker thread
    /// being terminated). The price: between two slices the waiter is briefly not in the
    /// kernel, so a notify that does not change the word can miss it there (as it can miss any
    /// waiter that has not gone to sleep yet). A word found changed between two slices counts
    /// as a wake-up ([`WaitOutcome::Ok`]), as in the spin phase.
    pub fn wait_interruptible(
        &self,
        byte_offset: usize,
        expected: i32,
        timeout: Option<Duration>,
        slice: Option<Duration>,
        interrupted: &mut dyn FnMut() -> bool,
    ) -> Result<WaitOutcome, RegionError> {
        let guard = self.enter()?;
        let atomic = self.atomic(byte_offset)?;
        let p = atomic.as_ptr();
        // Every load of the word is guarded (`None`: its page is gone), and so is the futex
        // call (`EFAULT`).
        // A fault is retried while the segment covers the word again (see `guarded`); the
        // error it ended with is kept for the result.
        let failed = std::cell::Cell::new(None);
        let load = || {
            // SAFETY: `p` is an aligned word of the mapping, mapped while the guard is held.
            match self.guarded(&guard, byte_offset, byte_offset + 4, || unsafe {
                fault::load(p)
            }) {
                Ok(v) => Some(v),
                Err(e) => {
                    failed.set(Some(e));
                    None
                }
            }
        };
        let outcome = match load() {
            None => Err(None),
            Some(v) if v != expected => Ok(Some(WaitOutcome::NotEqual)),
            Some(_) if spin_until_changed(&load, expected, timeout, &self.closed) => match load() {
                None => Err(None),
                Some(_) => Ok(Some(WaitOutcome::Ok)),
            },
            Some(_) if self.is_closed() => Ok(Some(WaitOutcome::Ok)),
            Some(_) => self
                .sleep(
                    atomic,
                    &load,
                    byte_offset,
                    expected,
                    timeout,
                    slice,
                    interrupted,
                )
                .map_err(Some),
        };
        let outcome = outcome.map_err(|e| match e {
            Some(e) if !fault::is_gone(&e) => RegionError::Os(Error::os(futex::WAIT_SYSCALL, e)),
            _ => failed
                .take()
                .unwrap_or_else(|| self.fault_error(&guard, byte_offset + 4)),
        });
        drop(guard);
        if self.is_closed() {
            return Err(RegionError::Closed);
        }
        match outcome? {
            Some(o) => Ok(o),
            None => Err(RegionError::Interrupted),
        }
    }

    /// The kernel part of `wait`, in slices: registered in `waiting` for its duration, so that
    /// `close` (which keeps re-reading the list while operations are in flight) can wake it.
    /// `Ok(None)`: interrupted. `load` is the guarded load of the word (`None`: page gone,
    /// reported as `EFAULT`, as the futex call reports it).
    #[allow(clippy::too_many_arguments)]
    fn sleep(
        &self,
        atomic: &AtomicI32,
        load: &dyn Fn() -> Option<i32>,
        byte_offset: usize,
        expected: i32,
        timeout: Option<Duration>,
        slice: Option<Duration>,
        interrupted: &mut dyn FnMut() -> bool,
    ) -> std::io::Result<Option<WaitOutcome>> {
        self.waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(byte_offset);
        let deadline = timeout.and_then(|t| std::time::Instant::now().checked_add(t));
        let outcome = loop {
            let left = deadline.map(|d| d.saturating_duration_since(std::time::Instant::now()));
            // `None`: forever (also a timeout past what an `Instant` holds).
            let sleep = match (left, slice) {
                (Some(l), Some(s)) => Some(l.min(s)),
                (l, s) => l.or(s),
            };
            // `closed` is polled by platforms without a cross-process futex (futex_poll.rs).
            match futex::wait(atomic, expected, sleep, &self.closed) {
                Ok(WaitOutcome::TimedOut) => {}
                // Changed between two slices: woken by value.
                Ok(WaitOutcome::NotEqual) => break Ok(Some(WaitOutcome::Ok)),
                // Woken: by a notify, or by `wake_waiters` for a waiter that must stop.
                Ok(WaitOutcome::Ok) => break Ok((!interrupted()).then_some(WaitOutcome::Ok)),
                // The word's page is gone: the guarded load below tells a shrink (and ends
                // the wait) from a segment regrown in between (then the wait goes on).
                Err(e) if fault::is_gone(&e) => {}
                Err(e) => break Err(e),
            }
            match load() {
                None => break Err(fault::gone()),
                Some(v) if v != expected || self.is_closed() => break Ok(Some(WaitOutcome::Ok)),
                Some(_) => {}
            }
            if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
                break Ok(Some(WaitOutcome::TimedOut));
            }
            if interrupted() {
                break Ok(None);
            }
        };
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = waiting.iter().position(|&o| o == byte_offset) {
            waiting.swap_remove(i);
        }
        outcome
    }

    /// Wakes every thread of this process blocked in [`wait`](Self::wait) on this region, without
    /// closing it, so that each re-checks its `interrupted` callback now rather than at the end of
    /// its slice. Other processes' waiters on the same words wake too (spuriously, which futex
    /// users must tolerate anyway).
    pub fn wake_waiters(&self) {
        let Ok(_guard) = self.enter() else {
            return; // closed: `close` already woke them
        };
        self.wake_registered();
    }

    /// Wakes every waiter registered in `waiting` (the caller keeps the mapping alive).
    fn wake_registered(&self) {
        let offsets: Vec<usize> = self
            .waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for offset in offsets {
            if let Ok(atomic) = self.atomic(offset) {
                let _ = futex::wake(atomic, u32::MAX);
            }
        }
    }

    /// Wakes up to `count` threads (in any process) waiting on the `Int32` at `byte_offset`.
    /// Returns how many were woken where the OS reports it (Linux, macOS), else 0.
    pub fn notify(&self, byte_offset: usize, count: u32) -> Result<u32, RegionError> {
        let guard = self.enter()?;
        let atomic = self.atomic(byte_offset)?;
        for _ in 0..FAULT_RETRIES {
            match futex::wake(atomic, count) {
                Ok(n) => return Ok(n),
                Err(e) if fault::is_gone(&e) => {
                    // Shrunk, or regrown since: then wake again (as in `guarded`).
                    self.after_fault(&guard, byte_offset + 4)?;
                }
                Err(e) => return Err(RegionError::Os(Error::os(futex::WAKE_SYSCALL, e))),
            }
        }
        if self.cannot_provide(&guard, byte_offset, byte_offset + 4)? {
            return Err(RegionError::Unbacked {
                needed: byte_offset as u64 + 4,
            });
        }
        futex::wake(atomic, count).map_err(|e| match fault::is_gone(&e) {
            true => self.fault_error(&guard, byte_offset + 4),
            false => RegionError::Os(Error::os(futex::WAKE_SYSCALL, e)),
        })
    }

    /// Closes the region: later operations fail with [`RegionError::Closed`], threads blocked
    /// in [`wait`](Self::wait) wake (their wait fails with `Closed`), the segment handle is
    /// released and, when `unmap` is true, the bytes are unmapped before this returns. With
    /// `unmap == false` the mapping lives until the region is dropped (for callers that handed
    /// the pointer to something they cannot revoke). A second call does nothing.
    pub fn close(&self, unmap: bool) {
        if self.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        // Wake blocked waiters until every operation has left. A waiter that passed its
        // `closed` check just before we set it may not be inside the kernel yet when we first
        // wake: keep waking (it is cheap and rare) until it has gone.
        while self.in_flight.load(Ordering::SeqCst) != 0 {
            // The mapping stays until the operations (the waiters among them) have left.
            self.wake_registered();
            std::thread::sleep(Duration::from_micros(50));
        }
        // SAFETY: `closed` is set (only this call got past the swap above) and no operation is
        // in flight, so no guard can be reading the cell (see `segment()`).
        drop(unsafe { (*self.segment.get()).take() });
        if unmap {
            drop(
                self.mapping
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .take(),
            );
        }
    }
}

/// A slice for [`Region::wait_interruptible`] callers that must notice within a human-prompt
/// time that they have to stop: 20 ms costs a blocked waiter 50 wake-ups a second.
pub const WAIT_SLICE: Duration = Duration::from_millis(20);

/// How long a waiter watches the word before it asks the kernel to put it to sleep.
const SPIN: Duration = Duration::from_micros(3);

/// How many times a guarded access that faulted is retried while the segment covers its range
/// again (a peer that shrinks and regrows it): past that, it is `Shrunk` all the same.
const FAULT_RETRIES: usize = 8;

/// Adaptive spin before sleeping, as glibc's adaptive mutexes do (and, like them, only where
/// this process may run on more than one CPU): a peer on another core
/// usually answers within a microsecond or two, far sooner than a sleep and a wake-up through
/// the kernel (two context switches). Watches the word for up to [`SPIN`], then yields the CPU
/// twice (so a peer waiting for *this* CPU can run), and returns `true` as soon as the word no
/// longer holds `expected` — a wake-up by value, which futex semantics allow: a protocol that
/// is correct with a futex changes the word before it notifies.
fn spin_until_changed(
    load: &dyn Fn() -> Option<i32>,
    expected: i32,
    timeout: Option<Duration>,
    closed: &AtomicBool,
) -> bool {
    // With one CPU to run on (a single-core machine, or pinned with taskset), spinning only
    // delays the peer that would change the word: go straight to sleep.
    static CPUS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let cpus = *CPUS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let budget = timeout.map_or(SPIN, |t| t.min(SPIN));
    if budget.is_zero() || cpus < 2 {
        return false;
    }
    let start = std::time::Instant::now();
    // A load that faults counts as a change: the caller loads again and reports it.
    let differs = || load().is_none_or(|v| v != expected);
    let changed = || differs() || closed.load(Ordering::Relaxed);
    loop {
        for _ in 0..32 {
            if changed() {
                return differs();
            }
            std::hint::spin_loop();
        }
        if start.elapsed() >= budget {
            break;
        }
    }
    for _ in 0..2 {
        std::thread::yield_now();
        if changed() {
            return differs();
        }
    }
    false
}

impl fmt::Debug for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Region")
            .field("ptr", &self.ptr)
            .field("len", &self.len)
            .field("access", &self.access)
            .field("closed", &self.is_closed())
            .finish()
    }
}
