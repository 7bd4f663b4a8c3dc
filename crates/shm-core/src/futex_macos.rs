//! Cross-process wait/notify on macOS, resolved at run time (never linked):
//! `os_sync_wait_on_address` / `os_sync_wake_by_address_*` with the `SHARED` flags (macOS 14.4+),
//! else the private-but-stable `__ulock_wait` / `__ulock_wake` with `UL_COMPARE_AND_WAIT_SHARED`
//! (what libc++ and Chromium use), else polling (`futex_poll.rs`).

use std::ffi::{c_char, c_int, c_void};
use std::io;
use std::sync::atomic::{AtomicBool, AtomicI32};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::WaitOutcome;

#[path = "futex_poll.rs"]
mod poll;

pub(crate) const WAIT_SYSCALL: &str = "os_sync_wait_on_address";
pub(crate) const WAKE_SYSCALL: &str = "os_sync_wake_by_address";

extern "C" {
    fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
    fn __error() -> *mut c_int;
}
const RTLD_DEFAULT: *mut c_void = -2isize as *mut c_void;

const OS_SYNC_WAIT_ON_ADDRESS_SHARED: u32 = 1;
const OS_SYNC_WAKE_BY_ADDRESS_SHARED: u32 = 1;
const OS_CLOCK_MACH_ABSOLUTE_TIME: u32 = 32;
const UL_COMPARE_AND_WAIT_SHARED: u32 = 3;
const ULF_WAKE_ALL: u32 = 0x0000_0100;
const ULF_NO_ERRNO: u32 = 0x0100_0000;
const EINTR: c_int = 4;
const ENOENT: c_int = 2;
const ETIMEDOUT: c_int = 60;

type OsSyncWait = unsafe extern "C" fn(*mut c_void, u64, usize, u32) -> c_int;
type OsSyncWaitTimeout = unsafe extern "C" fn(*mut c_void, u64, usize, u32, u32, u64) -> c_int;
type OsSyncWake = unsafe extern "C" fn(*mut c_void, usize, u32) -> c_int;
type UlockWait = unsafe extern "C" fn(u32, *mut c_void, u64, u32) -> c_int;
type UlockWake = unsafe extern "C" fn(u32, *mut c_void, u64) -> c_int;

enum Api {
    OsSync {
        wait: OsSyncWait,
        wait_timeout: OsSyncWaitTimeout,
        wake_any: OsSyncWake,
        wake_all: OsSyncWake,
    },
    Ulock {
        wait: UlockWait,
        wake: UlockWake,
    },
    Poll,
}

fn lookup(name: &std::ffi::CStr) -> *mut c_void {
    // SAFETY: RTLD_DEFAULT searches the loaded images; `name` is NUL-terminated.
    unsafe { dlsym(RTLD_DEFAULT, name.as_ptr()) }
}

fn api() -> &'static Api {
    static API: OnceLock<Api> = OnceLock::new();
    API.get_or_init(|| {
        let (w, wt, wa, wl) = (
            lookup(c"os_sync_wait_on_address"),
            lookup(c"os_sync_wait_on_address_with_timeout"),
            lookup(c"os_sync_wake_by_address_any"),
            lookup(c"os_sync_wake_by_address_all"),
        );
        if !w.is_null() && !wt.is_null() && !wa.is_null() && !wl.is_null() {
            // SAFETY: the symbols exist and have these C signatures (<os/os_sync_wait_on_address.h>).
            return unsafe {
                Api::OsSync {
                    wait: std::mem::transmute::<*mut c_void, OsSyncWait>(w),
                    wait_timeout: std::mem::transmute::<*mut c_void, OsSyncWaitTimeout>(wt),
                    wake_any: std::mem::transmute::<*mut c_void, OsSyncWake>(wa),
                    wake_all: std::mem::transmute::<*mut c_void, OsSyncWake>(wl),
                }
            };
        }
        let (uw, uk) = (lookup(c"__ulock_wait"), lookup(c"__ulock_wake"));
        if !uw.is_null() && !uk.is_null() {
            // SAFETY: the symbols exist with these signatures (xnu bsd/sys/ulock.h).
            return unsafe {
                Api::Ulock {
                    wait: std::mem::transmute::<*mut c_void, UlockWait>(uw),
                    wake: std::mem::transmute::<*mut c_void, UlockWake>(uk),
                }
            };
        }
        Api::Poll
    })
}

fn errno() -> c_int {
    // SAFETY: `__error` returns this thread's errno location.
    unsafe { *__error() }
}

pub(crate) fn wait(
    atomic: &AtomicI32,
    expected: i32,
    timeout: Option<Duration>,
    cancel: &AtomicBool,
) -> io::Result<WaitOutcome> {
    let addr = atomic.as_ptr().cast::<c_void>();
    let value = expected as u32 as u64;
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    let forever = timeout.is_none() || deadline.is_none();
    loop {
        let left = match deadline {
            Some(d) if !forever => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Ok(WaitOutcome::TimedOut);
                }
                Some(left)
            }
            _ => None,
        };
        let (rc, err) = match api() {
            Api::OsSync {
                wait, wait_timeout, ..
            } => {
                // SAFETY: `addr` is a live, 4-byte-aligned shared word (the caller holds the
                // region guard); the call only reads it.
                let rc = unsafe {
                    match left {
                        None => wait(addr, value, 4, OS_SYNC_WAIT_ON_ADDRESS_SHARED),
                        Some(l) => wait_timeout(
                            addr,
                            value,
                            4,
                            OS_SYNC_WAIT_ON_ADDRESS_SHARED,
                            OS_CLOCK_MACH_ABSOLUTE_TIME,
                            l.as_nanos().min(u64::MAX as u128) as u64,
                        ),
                    }
                };
                (rc, if rc < 0 { errno() } else { 0 })
            }
            Api::Ulock { wait, .. } => {
                // 0 means "no timeout" to __ulock_wait, so a finite wait is at least 1 µs and
                // longer ones go in slices of at most u32::MAX µs.
                let us = left
                    .map(|l| l.as_micros().clamp(1, u32::MAX as u128) as u32)
                    .unwrap_or(0);
                // SAFETY: as above.
                let rc =
                    unsafe { wait(UL_COMPARE_AND_WAIT_SHARED | ULF_NO_ERRNO, addr, value, us) };
                (rc, if rc < 0 { -rc } else { 0 })
            }
            Api::Poll => return poll::wait(atomic, expected, timeout, cancel),
        };
        if rc >= 0 {
            return Ok(WaitOutcome::Ok);
        }
        match err {
            EINTR => continue,
            // The loop's top turns a passed deadline into TimedOut; an earlier ETIMEDOUT is the
            // end of one __ulock_wait slice.
            ETIMEDOUT => continue,
            e => return Err(io::Error::from_raw_os_error(e)),
        }
    }
}

pub(crate) fn wake(atomic: &AtomicI32, count: u32) -> io::Result<u32> {
    let addr = atomic.as_ptr().cast::<c_void>();
    // Wake one at a time so that we can count (both APIs report "nobody was waiting" as
    // ENOENT); past a bound, wake everyone at once.
    const COUNTED: u32 = 1024;
    let mut woken = 0;
    while woken < count.min(COUNTED) {
        // SAFETY: `addr` is a live shared word (region guard); waking does not access it.
        let (rc, err) = unsafe {
            match api() {
                Api::OsSync { wake_any, .. } => {
                    let rc = wake_any(addr, 4, OS_SYNC_WAKE_BY_ADDRESS_SHARED);
                    (rc, if rc < 0 { errno() } else { 0 })
                }
                Api::Ulock { wake, .. } => {
                    let rc = wake(UL_COMPARE_AND_WAIT_SHARED | ULF_NO_ERRNO, addr, 0);
                    (rc, if rc < 0 { -rc } else { 0 })
                }
                Api::Poll => return poll::wake(atomic, count),
            }
        };
        if rc < 0 {
            if err == ENOENT {
                return Ok(woken);
            }
            return Err(io::Error::from_raw_os_error(err));
        }
        woken += 1;
    }
    if count > COUNTED {
        // SAFETY: as above.
        unsafe {
            match api() {
                Api::OsSync { wake_all, .. } => {
                    wake_all(addr, 4, OS_SYNC_WAKE_BY_ADDRESS_SHARED);
                }
                Api::Ulock { wake, .. } => {
                    wake(
                        UL_COMPARE_AND_WAIT_SHARED | ULF_WAKE_ALL | ULF_NO_ERRNO,
                        addr,
                        0,
                    );
                }
                Api::Poll => {}
            }
        }
    }
    Ok(woken)
}
