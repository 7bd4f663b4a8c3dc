//! Wait/notify where the OS has no cross-process address wait (Windows, whose `WaitOnAddress`
//! only sees threads of one process; other Unixes).
//!
//! * Waiters in **this process** register under the word's address; `notify` hands out up to
//!   `count` wake tickets to them, wakes them at once (a condition variable) and returns how many
//!   it woke, exactly as a futex would. A notify that does not change the value still wakes them.
//! * Waiters in **other processes** cannot be reached: they poll the value (spin → yield → sleeps
//!   of at most 1 ms) and return `Ok` once it differs from `expected`. So across processes a
//!   notify must change the value to be seen, a wake takes up to about a millisecond, and the
//!   count `notify` returns leaves those waiters out. Documented in the README.
//!
//! Addresses are per mapping: two mappings of one segment in one process are two addresses, so a
//! notify through one reaches a waiter on the other only by the value change, as across
//! processes.

use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use crate::WaitOutcome;

// Used where this file is the `futex` module (Windows, other Unixes); on macOS it is only the
// fallback inside `futex_macos.rs`, which names its own syscalls.
#[cfg_attr(target_os = "macos", allow(dead_code))]
pub(crate) const WAIT_SYSCALL: &str = "wait";
#[cfg_attr(target_os = "macos", allow(dead_code))]
pub(crate) const WAKE_SYSCALL: &str = "notify";

/// Longest sleep between two looks at the value (what a cross-process wake may take).
const POLL: Duration = Duration::from_millis(1);

/// This process's waiters on one address.
#[derive(Default)]
struct Slot {
    /// Threads inside `wait` on this address.
    waiting: u32,
    /// Wakes handed out by `notify` and not yet taken by a waiter (never more than `waiting`).
    tickets: u32,
}

struct Table {
    slots: Mutex<BTreeMap<usize, Slot>>,
    woken: Condvar,
}

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| Table {
        slots: Mutex::new(BTreeMap::new()),
        woken: Condvar::new(),
    })
}

fn lock(t: &Table) -> MutexGuard<'_, BTreeMap<usize, Slot>> {
    // The table holds plain counters that are consistent at every unlock: a panic elsewhere
    // while it was held cannot leave it half-updated, so poisoning carries no information.
    t.slots.lock().unwrap_or_else(|e| e.into_inner())
}

fn key(atomic: &AtomicI32) -> usize {
    atomic as *const AtomicI32 as usize
}

/// Leaves the table: takes a ticket if one is there (returns true) and drops the slot when empty.
fn leave(slots: &mut BTreeMap<usize, Slot>, k: usize) -> bool {
    let Some(slot) = slots.get_mut(&k) else {
        return false;
    };
    slot.waiting -= 1;
    let took = slot.tickets > 0;
    if took {
        slot.tickets -= 1;
    }
    if slot.waiting == 0 {
        slots.remove(&k);
    }
    took
}

pub(crate) fn wait(
    atomic: &AtomicI32,
    expected: i32,
    timeout: Option<Duration>,
    cancel: &AtomicBool,
) -> io::Result<WaitOutcome> {
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    let t = table();
    let k = key(atomic);
    lock(t).entry(k).or_default().waiting += 1;
    let mut round: u32 = 0;
    loop {
        if atomic.load(Ordering::SeqCst) != expected || cancel.load(Ordering::SeqCst) {
            leave(&mut lock(t), k);
            return Ok(WaitOutcome::Ok);
        }
        let left = match deadline {
            Some(d) => d.saturating_duration_since(Instant::now()),
            None => Duration::MAX,
        };
        round = round.saturating_add(1);
        let mut slots = lock(t);
        if slots.get(&k).is_some_and(|s| s.tickets > 0) {
            leave(&mut slots, k);
            return Ok(WaitOutcome::Ok);
        }
        if left.is_zero() {
            leave(&mut slots, k);
            return Ok(WaitOutcome::TimedOut);
        }
        if round < 64 {
            drop(slots);
            std::hint::spin_loop();
        } else if round < 128 {
            drop(slots);
            std::thread::yield_now();
        } else {
            // Woken at once by a notify in this process; otherwise back within POLL to look
            // at the value (a peer process may have changed it).
            let (guard, _) = t
                .woken
                .wait_timeout(slots, left.min(POLL))
                .unwrap_or_else(|e| e.into_inner());
            drop(guard);
        }
    }
}

/// Wakes up to `count` waiters of this process on `atomic` and returns how many; waiters in other
/// processes see only a changed value (see the module docs).
pub(crate) fn wake(atomic: &AtomicI32, count: u32) -> io::Result<u32> {
    let t = table();
    let mut slots = lock(t);
    let Some(slot) = slots.get_mut(&key(atomic)) else {
        return Ok(0);
    };
    let n = count.min(slot.waiting - slot.tickets);
    slot.tickets += n;
    drop(slots);
    if n > 0 {
        t.woken.notify_all();
    }
    Ok(n)
}
