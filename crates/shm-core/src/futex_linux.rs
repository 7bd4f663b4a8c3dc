//! Cross-process wait/notify on Linux: `futex(2)` *without* `FUTEX_PRIVATE_FLAG`, so the kernel
//! keys waiters by the shared page (inode + offset) and a wake in one process reaches a waiter
//! in another.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32};
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::thread::futex::{self, Flags, Timespec};

use crate::WaitOutcome;

pub(crate) const WAIT_SYSCALL: &str = "futex";
pub(crate) const WAKE_SYSCALL: &str = "futex";

fn word(atomic: &AtomicI32) -> &AtomicU32 {
    // SAFETY: AtomicI32 and AtomicU32 have the same size, alignment and bit validity; the
    // futex word is only ever accessed atomically through either view.
    unsafe { &*(atomic as *const AtomicI32).cast::<AtomicU32>() }
}

pub(crate) fn wait(
    atomic: &AtomicI32,
    expected: i32,
    timeout: Option<Duration>,
    _cancel: &AtomicBool,
) -> io::Result<WaitOutcome> {
    // `None` (or a deadline past the clock's range) waits forever.
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    let forever = timeout.is_some() && deadline.is_none();
    loop {
        let remaining = match deadline {
            None => None,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Ok(WaitOutcome::TimedOut);
                }
                Some(Timespec {
                    tv_sec: left.as_secs().min(i64::MAX as u64) as i64,
                    tv_nsec: left.subsec_nanos() as _,
                })
            }
        };
        let timeout = if forever { None } else { remaining };
        match futex::wait(
            word(atomic),
            Flags::empty(),
            expected as u32,
            timeout.as_ref(),
        ) {
            Ok(()) => return Ok(WaitOutcome::Ok),
            // The value changed between our check and the kernel's.
            Err(Errno::AGAIN) => return Ok(WaitOutcome::NotEqual),
            Err(Errno::TIMEDOUT) => return Ok(WaitOutcome::TimedOut),
            // A signal handler ran: wait again for what is left of the timeout.
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

pub(crate) fn wake(atomic: &AtomicI32, count: u32) -> io::Result<u32> {
    let count = count.min(i32::MAX as u32);
    let woken = futex::wake(word(atomic), Flags::empty(), count)?;
    Ok(woken as u32)
}
