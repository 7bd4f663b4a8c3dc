//! Where no fault guard exists (see `fault.rs`): plain copies and atomics with the same
//! signatures. macOS and Windows need none (a mapped segment cannot shrink there); other Unix
//! systems and other Linux architectures keep `Region`'s size re-check (`GUARDED == false`),
//! which leaves the atomics and `wait` unguarded.

use std::sync::atomic::{AtomicI32, Ordering};

/// No fault is ever recovered here: `Region` re-checks the size where segments can shrink.
pub(crate) const GUARDED: bool = false;

/// Never produced here (the signatures match `fault.rs`).
#[derive(Debug)]
pub(crate) struct Fault;

pub(crate) fn install(_reuse_handlers: bool) -> bool {
    true
}

pub(crate) fn reinstall() -> bool {
    true
}

/// Never used here (loads do not fail).
pub(crate) fn gone() -> std::io::Error {
    std::io::Error::from(std::io::ErrorKind::InvalidData)
}

/// Never `true` here: without the guard a vanished page is a SIGBUS, not an error.
pub(crate) fn is_gone(_e: &std::io::Error) -> bool {
    false
}

/// # Safety
/// `src..src+len` and `dst..dst+len` are live, non-overlapping; `dst` writable.
pub(crate) unsafe fn copy_from_segment(
    src: *const u8,
    dst: *mut u8,
    len: usize,
) -> Result<(), Fault> {
    // SAFETY: the caller's contract.
    unsafe { std::ptr::copy_nonoverlapping(src, dst, len) };
    Ok(())
}

/// # Safety
/// As for [`copy_from_segment`].
pub(crate) unsafe fn copy_to_segment(
    src: *const u8,
    dst: *mut u8,
    len: usize,
) -> Result<(), Fault> {
    // SAFETY: the caller's contract.
    unsafe { std::ptr::copy_nonoverlapping(src, dst, len) };
    Ok(())
}

/// # Safety
/// `p` is 4-aligned, live, and only accessed atomically.
unsafe fn atomic<'a>(p: *const i32) -> &'a AtomicI32 {
    // SAFETY: the caller's contract.
    unsafe { AtomicI32::from_ptr(p.cast_mut()) }
}

/// # Safety
/// `p` is 4-aligned and live.
pub(crate) unsafe fn load(p: *const i32) -> Result<i32, Fault> {
    // SAFETY: the caller's contract.
    Ok(unsafe { atomic(p) }.load(Ordering::SeqCst))
}

/// # Safety
/// As for [`load`], and writable.
pub(crate) unsafe fn store(p: *mut i32, value: i32) -> Result<(), Fault> {
    // SAFETY: the caller's contract.
    unsafe { atomic(p) }.store(value, Ordering::SeqCst);
    Ok(())
}

/// # Safety
/// As for [`store`].
pub(crate) unsafe fn add(p: *mut i32, delta: i32) -> Result<i32, Fault> {
    // SAFETY: the caller's contract.
    Ok(unsafe { atomic(p) }.fetch_add(delta, Ordering::SeqCst))
}

/// # Safety
/// As for [`store`].
pub(crate) unsafe fn compare_exchange(
    p: *mut i32,
    expected: i32,
    replacement: i32,
) -> Result<i32, Fault> {
    // SAFETY: the caller's contract.
    let r = unsafe { atomic(p) }.compare_exchange(
        expected,
        replacement,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    Ok(r.unwrap_or_else(|old| old))
}
