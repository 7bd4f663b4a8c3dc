//! Wait/notify where the OS has no cross-process address wait (Windows, whose `WaitOnAddress`
//! only sees threads of one process; other Unixes): the waiter polls the value with a
//! spin → yield → 1 ms sleep backoff.
//!
//! Consequences, documented in the README: `wait` returns `Ok` once the value differs from
//! `expected` (a notify that does not change the value is not seen), a wake takes up to about
//! a millisecond, and `notify` cannot count waiters, so it returns 0.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::{Duration, Instant};

use crate::WaitOutcome;

// Used where this file is the `futex` module (Windows, other Unixes); on macOS it is only the
// fallback inside `futex_macos.rs`, which names its own syscalls.
#[cfg_attr(target_os = "macos", allow(dead_code))]
pub(crate) const WAIT_SYSCALL: &str = "wait";
#[cfg_attr(target_os = "macos", allow(dead_code))]
pub(crate) const WAKE_SYSCALL: &str = "notify";

pub(crate) fn wait(
    atomic: &AtomicI32,
    expected: i32,
    timeout: Option<Duration>,
    cancel: &AtomicBool,
) -> io::Result<WaitOutcome> {
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    let forever = timeout.is_none() || deadline.is_none();
    let mut round: u32 = 0;
    loop {
        if atomic.load(Ordering::SeqCst) != expected || cancel.load(Ordering::SeqCst) {
            return Ok(WaitOutcome::Ok);
        }
        let left = match deadline {
            Some(d) if !forever => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Ok(WaitOutcome::TimedOut);
                }
                left
            }
            _ => Duration::MAX,
        };
        round = round.saturating_add(1);
        if round < 64 {
            std::hint::spin_loop();
        } else if round < 128 {
            std::thread::yield_now();
        } else {
            std::thread::sleep(left.min(Duration::from_millis(1)));
        }
    }
}

pub(crate) fn wake(_atomic: &AtomicI32, _count: u32) -> io::Result<u32> {
    Ok(0)
}
