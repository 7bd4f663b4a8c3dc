//! Copies and atomics on shared memory that survive a peer's `ftruncate` (Linux x86_64/aarch64).
//!
//! A peer can shrink a segment we have mapped; touching a page past its new end raises SIGBUS
//! (SIGSEGV where the pages are gone altogether). Instead of re-reading the size with a system
//! call before every access, every access to the segment made by [`Region`](crate::Region)'s
//! copies and atomics runs in one of a few hand-written assembly routines, all placed between
//! the labels `nsm_guard_start` and `nsm_guard_end`. A process-wide SIGBUS/SIGSEGV handler
//! that finds the faulting instruction between those labels *and* the fault address inside the
//! range the routine was told it may fault on, rewrites the saved program counter to
//! `nsm_guard_fixup`, which returns 1 from the routine; the caller turns that into
//! `RegionError::Shrunk`. This is how the Linux kernel's exception tables and Wasmtime's trap
//! handler work. No system call is made on the fast path.
//!
//! # Invariants
//!
//! * **The routines are leaf functions that never touch the stack pointer or the link
//!   register**, so returning from `nsm_guard_fixup` returns to the routine's caller with
//!   every callee-saved register intact. Faults are only expected on the segment; a routine's
//!   other accesses (the caged buffer, the `out` pointer on the caller's stack) are never
//!   recovered: their faults go on to the previous handler like any other.
//! * **The per-call state lives in the faulting thread's own registers**: every routine takes
//!   the range it may fault on as its 5th and 6th arguments (`r8`/`r9` on x86_64, `x4`/`x5`
//!   on aarch64) and never writes those registers. The handler reads them from the signal's
//!   `ucontext`, so several threads can copy at once without any shared or thread-local
//!   variable, and the handler touches no memory that could be uninitialised for a thread.
//! * **The handler is async-signal-safe and keeps no state across a call to another
//!   handler**: it reads the context, atomics and the chain of previous actions (written once
//!   each); the only calls it makes are `sigaction`, `pthread_sigmask` and `raise`
//!   (async-signal-safe in POSIX) and the previous handlers themselves. Only a fault the kernel
//!   raised (`si_code > 0`) can be ours: a SIGBUS/SIGSEGV sent by `kill`/`sigqueue`/`raise` is
//!   passed on whatever address it claims; so is a call with a null `siginfo` or context.
//! * **Every fault that is not ours goes on, untouched, to the handler installed before
//!   ours, as the kernel would have delivered it**: `sa_sigaction` with `SA_SIGINFO`, else
//!   `sa_handler`; its `sa_mask` (and the signal, unless `SA_NODEFER`) blocked around the call
//!   and unblocked after (a handler that leaves by `siglongjmp` restores its own mask);
//!   `SA_RESETHAND` honoured (the first fault runs it, later ones take the default action, as
//!   the kernel resets the action); `SIG_DFL` by restoring the default action and letting the
//!   fault happen again (or re-raising, unblocked, a signal that was sent), `SIG_IGN` by
//!   ignoring a sent signal (a fault cannot be ignored: the kernel kills, so we restore the
//!   default action). Node installs a SIGSEGV handler at start-up for WebAssembly's bounds
//!   checks, Electron crash reporters install theirs before any addon loads: both stay in the
//!   chain behind ours.
//! * **A handler installed after ours** becomes the first to see every fault. One that chains
//!   to its predecessor (as crash reporters and wasm trap handlers do) calls ours, which then
//!   recovers our faults as usual. One that does not chain would see our faults as its own, so
//!   [`install`] (called by every `Region::open`) checks whether one of ours is still the
//!   installed action and, if not, installs ours again on top, keeping the one found as the
//!   next link of the chain. Each level of the chain has its own entry point ([`ENTRIES`]):
//!   entry `k` passes a foreign fault to link `k`, and a link installed over entry `k` that
//!   chains to its predecessor calls entry `k`, never ours at another level. So a link that
//!   calls back with a copy of `siginfo`, re-raises the signal (after re-installing its
//!   predecessor), or never returns (`siglongjmp`) runs once and the fault goes on down (or to
//!   the default action) without bookkeeping to unwind. Limits: a handler installed after ours
//!   catches our faults until the next `Region::open`; at most [`CHAIN_MAX`] distinct actions
//!   per signal (`SIG_DFL`/`SIG_IGN` and, from [`reinstall`], a handler already chained re-use
//!   their slot, see [`install`]); a handler function runs at most once per fault along the
//!   slots (see [`pass_on`]); a
//!   link runs on the stack ours runs on (the alternate signal stack if the thread has one),
//!   whatever its own `SA_ONSTACK`.
//! * The handler is never removed (an addon can be unloaded only with its process here; Node
//!   never `dlclose`s an addon).
//!
//! Bytes between a segment's new end and the end of its last page are not gone: they read as
//! zeros and writes to them are lost, as with any file mapping. So a shrink is seen at page
//! granularity. A copy probes the last byte of its range first (the segment is a prefix of the
//! mapping, so if the last byte's page is there, every page is): a copy that fails copied
//! nothing, unless the peer truncates *during* the copy, when a prefix may have been copied.

use std::cell::UnsafeCell;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

/// This platform recovers faults in the routines below; `Region` needs no size re-check.
pub(crate) const GUARDED: bool = true;

/// A routine touched a page the segment no longer has.
#[derive(Debug)]
pub(crate) struct Fault;

/// The error a guarded load of a vanished word stands for (what the futex call says then).
pub(crate) fn gone() -> std::io::Error {
    std::io::Error::from_raw_os_error(libc::EFAULT)
}

/// Whether a futex call failed because the word's page is gone (`EFAULT`).
pub(crate) fn is_gone(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(libc::EFAULT)
}

#[cfg(target_arch = "x86_64")]
std::arch::global_asm!(
    ".pushsection .text.nsm_guard,\"ax\",@progbits",
    ".p2align 4",
    ".globl nsm_guard_start",
    ".hidden nsm_guard_start",
    "nsm_guard_start:",
    // copy(dst rdi, src rsi, len rdx, probe rcx, lo r8, hi r9) -> eax
    ".globl nsm_guard_copy",
    ".hidden nsm_guard_copy",
    ".type nsm_guard_copy,@function",
    "nsm_guard_copy:",
    "    movzx eax, byte ptr [rcx]",
    // 64 bytes per round (SSE2, unaligned; `rep movsb` is 4× slower than memcpy on AMD Zen
    // for large copies out of shared memory), then 16, then single bytes.
    "    cmp rdx, 64",
    "    jb 3f",
    "2:  movdqu xmm0, xmmword ptr [rsi]",
    "    movdqu xmm1, xmmword ptr [rsi + 16]",
    "    movdqu xmm2, xmmword ptr [rsi + 32]",
    "    movdqu xmm3, xmmword ptr [rsi + 48]",
    "    movdqu xmmword ptr [rdi], xmm0",
    "    movdqu xmmword ptr [rdi + 16], xmm1",
    "    movdqu xmmword ptr [rdi + 32], xmm2",
    "    movdqu xmmword ptr [rdi + 48], xmm3",
    "    add rsi, 64",
    "    add rdi, 64",
    "    sub rdx, 64",
    "    cmp rdx, 64",
    "    jae 2b",
    "3:  cmp rdx, 16",
    "    jb 4f",
    "    movdqu xmm0, xmmword ptr [rsi]",
    "    movdqu xmmword ptr [rdi], xmm0",
    "    add rsi, 16",
    "    add rdi, 16",
    "    sub rdx, 16",
    "    jmp 3b",
    "4:  test rdx, rdx",
    "    jz 6f",
    "5:  movzx eax, byte ptr [rsi]",
    "    mov byte ptr [rdi], al",
    "    inc rsi",
    "    inc rdi",
    "    dec rdx",
    "    jnz 5b",
    "6:  xor eax, eax",
    "    ret",
    // load32(p rdi, out rsi, -, -, lo r8, hi r9): a SeqCst load is a plain mov on x86_64
    ".globl nsm_guard_load32",
    ".hidden nsm_guard_load32",
    ".type nsm_guard_load32,@function",
    "nsm_guard_load32:",
    "    mov eax, dword ptr [rdi]",
    "    mov dword ptr [rsi], eax",
    "    xor eax, eax",
    "    ret",
    // store32(p rdi, value esi, -, -, lo r8, hi r9): SeqCst store = xchg
    ".globl nsm_guard_store32",
    ".hidden nsm_guard_store32",
    ".type nsm_guard_store32,@function",
    "nsm_guard_store32:",
    "    xchg dword ptr [rdi], esi",
    "    xor eax, eax",
    "    ret",
    // add32(p rdi, delta esi, out rdx, -, lo r8, hi r9)
    ".globl nsm_guard_add32",
    ".hidden nsm_guard_add32",
    ".type nsm_guard_add32,@function",
    "nsm_guard_add32:",
    "    lock xadd dword ptr [rdi], esi",
    "    mov dword ptr [rdx], esi",
    "    xor eax, eax",
    "    ret",
    // cas32(p rdi, expected esi, replacement edx, out rcx, lo r8, hi r9)
    ".globl nsm_guard_cas32",
    ".hidden nsm_guard_cas32",
    ".type nsm_guard_cas32,@function",
    "nsm_guard_cas32:",
    "    mov eax, esi",
    "    lock cmpxchg dword ptr [rdi], edx",
    "    mov dword ptr [rcx], eax",
    "    xor eax, eax",
    "    ret",
    // Where the handler resumes a routine that faulted on its segment range.
    ".globl nsm_guard_fixup",
    ".hidden nsm_guard_fixup",
    "nsm_guard_fixup:",
    "    mov eax, 1",
    "    ret",
    ".globl nsm_guard_end",
    ".hidden nsm_guard_end",
    "nsm_guard_end:",
    ".popsection",
);

#[cfg(target_arch = "aarch64")]
std::arch::global_asm!(
    ".pushsection .text.nsm_guard,\"ax\",%progbits",
    ".p2align 4",
    ".globl nsm_guard_start",
    ".hidden nsm_guard_start",
    "nsm_guard_start:",
    // copy(dst x0, src x1, len x2, probe x3, lo x4, hi x5) -> w0
    ".globl nsm_guard_copy",
    ".hidden nsm_guard_copy",
    ".type nsm_guard_copy,%function",
    "nsm_guard_copy:",
    "    ldrb w9, [x3]",
    "    cmp x2, #16",
    "    b.lo 3f",
    "2:  ldp x9, x10, [x1], #16",
    "    stp x9, x10, [x0], #16",
    "    sub x2, x2, #16",
    "    cmp x2, #16",
    "    b.hs 2b",
    "3:  cbz x2, 5f",
    "4:  ldrb w9, [x1], #1",
    "    strb w9, [x0], #1",
    "    subs x2, x2, #1",
    "    b.ne 4b",
    "5:  mov w0, #0",
    "    ret",
    // load32(p x0, out x1, -, -, lo x4, hi x5): SeqCst load = ldar
    ".globl nsm_guard_load32",
    ".hidden nsm_guard_load32",
    ".type nsm_guard_load32,%function",
    "nsm_guard_load32:",
    "    ldar w9, [x0]",
    "    str w9, [x1]",
    "    mov w0, #0",
    "    ret",
    // store32(p x0, value w1, -, -, lo x4, hi x5): SeqCst store = stlr
    ".globl nsm_guard_store32",
    ".hidden nsm_guard_store32",
    ".type nsm_guard_store32,%function",
    "nsm_guard_store32:",
    "    stlr w1, [x0]",
    "    mov w0, #0",
    "    ret",
    // add32(p x0, delta w1, out x2, -, lo x4, hi x5): the LL/SC loop Rust emits without LSE
    ".globl nsm_guard_add32",
    ".hidden nsm_guard_add32",
    ".type nsm_guard_add32,%function",
    "nsm_guard_add32:",
    "2:  ldaxr w9, [x0]",
    "    add w10, w9, w1",
    "    stlxr w11, w10, [x0]",
    "    cbnz w11, 2b",
    "    str w9, [x2]",
    "    mov w0, #0",
    "    ret",
    // cas32(p x0, expected w1, replacement w2, out x3, lo x4, hi x5)
    ".globl nsm_guard_cas32",
    ".hidden nsm_guard_cas32",
    ".type nsm_guard_cas32,%function",
    "nsm_guard_cas32:",
    "2:  ldaxr w9, [x0]",
    "    cmp w9, w1",
    "    b.ne 3f",
    "    stlxr w10, w2, [x0]",
    "    cbnz w10, 2b",
    "    b 4f",
    "3:  clrex",
    "4:  str w9, [x3]",
    "    mov w0, #0",
    "    ret",
    ".globl nsm_guard_fixup",
    ".hidden nsm_guard_fixup",
    "nsm_guard_fixup:",
    "    mov w0, #1",
    "    ret",
    ".globl nsm_guard_end",
    ".hidden nsm_guard_end",
    "nsm_guard_end:",
    ".popsection",
);

extern "C" {
    fn nsm_guard_copy(
        dst: *mut u8,
        src: *const u8,
        len: usize,
        probe: *const u8,
        lo: usize,
        hi: usize,
    ) -> u32;
    fn nsm_guard_load32(
        p: *const i32,
        out: *mut i32,
        _a: usize,
        _b: usize,
        lo: usize,
        hi: usize,
    ) -> u32;
    fn nsm_guard_store32(
        p: *mut i32,
        value: i32,
        _a: usize,
        _b: usize,
        lo: usize,
        hi: usize,
    ) -> u32;
    fn nsm_guard_add32(
        p: *mut i32,
        delta: i32,
        out: *mut i32,
        _b: usize,
        lo: usize,
        hi: usize,
    ) -> u32;
    fn nsm_guard_cas32(
        p: *mut i32,
        expected: i32,
        replacement: i32,
        out: *mut i32,
        lo: usize,
        hi: usize,
    ) -> u32;
    fn nsm_guard_start();
    fn nsm_guard_fixup();
    fn nsm_guard_end();
}

fn status(r: u32) -> Result<(), Fault> {
    if r == 0 {
        Ok(())
    } else {
        Err(Fault)
    }
}

/// Copies `len` bytes from the segment at `src` to `dst`.
///
/// # Safety
/// `src..src+len` lies in a live mapping of the segment (the segment may have shrunk under
/// it), `dst..dst+len` is writable memory of ours that does not overlap it; `len > 0`.
pub(crate) unsafe fn copy_from_segment(
    src: *const u8,
    dst: *mut u8,
    len: usize,
) -> Result<(), Fault> {
    let lo = src as usize;
    // SAFETY: the caller's contract; the routine reads `src+len-1` first, then copies.
    status(unsafe { nsm_guard_copy(dst, src, len, src.add(len - 1), lo, lo + len) })
}

/// Copies `len` bytes from `src` into the segment at `dst`.
///
/// # Safety
/// `dst..dst+len` lies in a live, writable, shared mapping of the segment (which may have
/// shrunk under it), `src..src+len` is readable memory of ours that does not overlap it;
/// `len > 0`.
pub(crate) unsafe fn copy_to_segment(
    src: *const u8,
    dst: *mut u8,
    len: usize,
) -> Result<(), Fault> {
    let lo = dst as usize;
    // SAFETY: the caller's contract; the routine reads `dst+len-1` first, then copies.
    status(unsafe { nsm_guard_copy(dst, src, len, dst.add(len - 1), lo, lo + len) })
}

/// SeqCst load of the `i32` at `p`.
///
/// # Safety
/// `p` is 4-aligned and lies in a live mapping of the segment (which may have shrunk).
pub(crate) unsafe fn load(p: *const i32) -> Result<i32, Fault> {
    let mut out = 0;
    let lo = p as usize;
    // SAFETY: the caller's contract; `out` is a local.
    status(unsafe { nsm_guard_load32(p, &mut out, 0, 0, lo, lo + 4) })?;
    Ok(out)
}

/// SeqCst store.
///
/// # Safety
/// As for [`load`], and the mapping is writable.
pub(crate) unsafe fn store(p: *mut i32, value: i32) -> Result<(), Fault> {
    let lo = p as usize;
    // SAFETY: the caller's contract.
    status(unsafe { nsm_guard_store32(p, value, 0, 0, lo, lo + 4) })
}

/// SeqCst wrapping add; the old value.
///
/// # Safety
/// As for [`store`].
pub(crate) unsafe fn add(p: *mut i32, delta: i32) -> Result<i32, Fault> {
    let mut out = 0;
    let lo = p as usize;
    // SAFETY: the caller's contract; `out` is a local.
    status(unsafe { nsm_guard_add32(p, delta, &mut out, 0, lo, lo + 4) })?;
    Ok(out)
}

/// SeqCst compare-exchange; the old value.
///
/// # Safety
/// As for [`store`].
pub(crate) unsafe fn compare_exchange(
    p: *mut i32,
    expected: i32,
    replacement: i32,
) -> Result<i32, Fault> {
    let mut out = 0;
    let lo = p as usize;
    // SAFETY: the caller's contract; `out` is a local.
    status(unsafe { nsm_guard_cas32(p, expected, replacement, &mut out, lo, lo + 4) })?;
    Ok(out)
}

// ---- the handler ----

/// SIGBUS and SIGSEGV, in the order of [`CHAINS`].
const SIGNALS: [libc::c_int; 2] = [libc::SIGBUS, libc::SIGSEGV];

/// How many actions one signal's chain keeps: the one found at the first install, plus one per
/// re-install over a handler installed after ours (or over one installed by another thread
/// between our query and our install) that no slot holds yet (see [`install`]).
const CHAIN_MAX: usize = 8;

/// The actions ours passes foreign faults to. `slots[k]` is the action that was installed when
/// entry `k` ([`ENTRIES`]) replaced it: `slots[0]` the one found at the first install,
/// `slots[k]` the one found on top of ours at a later re-install. A slot is written once, under
/// [`INSTALL`], before `len` is raised past it (Release) and before its entry is installed, and
/// never changes after. `spent[k]` is set when a `SA_RESETHAND` slot has been run once: the
/// kernel would have reset that action to `SIG_DFL`, so the slot counts as `SIG_DFL` after.
struct Chain {
    len: AtomicUsize,
    slots: [UnsafeCell<MaybeUninit<libc::sigaction>>; CHAIN_MAX],
    spent: [AtomicBool; CHAIN_MAX],
    /// The entry we installed last ([`NONE`] before the first install): the one on top, or
    /// the one below whatever was installed over it since. Written under [`INSTALL`].
    top: AtomicUsize,
}

/// `Chain::top` before the first install.
const NONE: usize = usize::MAX;

// SAFETY: see `Chain`: each slot is written once before it is published and only read after;
// `len` and `spent` are atomics.
unsafe impl Sync for Chain {}

#[allow(clippy::declare_interior_mutable_const)] // only an array initialiser
const EMPTY_SLOT: UnsafeCell<MaybeUninit<libc::sigaction>> = UnsafeCell::new(MaybeUninit::uninit());
#[allow(clippy::declare_interior_mutable_const)]
const FRESH: AtomicBool = AtomicBool::new(false);
#[allow(clippy::declare_interior_mutable_const)]
const EMPTY_CHAIN: Chain = Chain {
    len: AtomicUsize::new(0),
    slots: [EMPTY_SLOT; CHAIN_MAX],
    spent: [FRESH; CHAIN_MAX],
    top: AtomicUsize::new(NONE),
};
static CHAINS: [Chain; 2] = [EMPTY_CHAIN; 2];

/// Serialises installs (never taken by the handler).
static INSTALL: Mutex<()> = Mutex::new(());

type Entry = extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void);

/// Our handler's entry points, one per chain level: entry `k` passes a fault that is not ours
/// to `slots[k]`, whoever called it. A handler installed after ours records the entry it
/// replaced as its predecessor, so when it chains "to us" it calls the entry one level below
/// it, which continues with the right link. So no state is kept across a call to a link: one
/// that never returns (`siglongjmp`), chains with a copy of `siginfo`, or re-raises the signal
/// leaves nothing behind and cannot make the fault go round in a loop.
const ENTRIES: [Entry; CHAIN_MAX] = [
    entry::<0>, entry::<1>, entry::<2>, entry::<3>, entry::<4>, entry::<5>, entry::<6>, entry::<7>,
];

/// Whether `action` (a `sa_sigaction` value) is one of our entries.
fn is_ours(action: usize) -> bool {
    ENTRIES.iter().any(|&e| e as usize == action)
}

/// Whether `a` and `b` are the same action (handler, flags and mask), as far as delivering a
/// fault to it goes.
fn same_action(a: &libc::sigaction, b: &libc::sigaction) -> bool {
    a.sa_sigaction == b.sa_sigaction
        && a.sa_flags == b.sa_flags
        // SAFETY: both masks are valid sigsets; sigismember only reads them.
        && (1..=64).all(|s| unsafe {
            libc::sigismember(&a.sa_mask, s) == libc::sigismember(&b.sa_mask, s)
        })
}

/// Whether `action` is `SIG_DFL` or `SIG_IGN`.
fn is_disposition(action: usize) -> bool {
    action == libc::SIG_DFL || action == libc::SIG_IGN
}

/// Installs the handler for SIGBUS and SIGSEGV if none of its entries is the installed action
/// (the first time, or after a later `sigaction` replaced it), chaining to what it finds.
/// Called by every `Region::open`; two `sigaction` queries when nothing changed. The install
/// swaps the action atomically and checks what it replaced: if another thread installed a
/// handler between our query and our install, that one is chained too (and put back below ours).
///
/// A `SIG_DFL` or `SIG_IGN` found on top takes no new slot when a slot already holds it: the
/// entry of that slot is installed again (the disposition does not chain, so nothing can loop).
/// With `reuse_handlers` (the binding's calls after a JavaScript listener change, which
/// install or remove libuv's handler), a handler found on top that a slot above the entry we
/// installed last already holds (the same action) re-uses that slot too; one at or below it
/// is not re-used (that handler may have saved that entry, or one above it, as its
/// predecessor: calling it from there would loop). So adding and removing listeners costs no
/// slot after the first `on`.
///
/// Returns `false` when a handler found on top could not be chained because all
/// [`CHAIN_MAX`] slots are taken (ours is then not on top: the guard is lost for that signal).
pub(crate) fn install(reuse_handlers: bool) -> bool {
    let _lock = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    let mut guarded = true;
    for (chain, &sig) in CHAINS.iter().zip(SIGNALS.iter()) {
        // SAFETY: a zeroed sigaction is a valid out-parameter; a null new action only queries.
        let mut found: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: valid pointers; querying has no effect.
        if unsafe { libc::sigaction(sig, std::ptr::null(), &mut found) } != 0 {
            continue;
        }
        while !is_ours(found.sa_sigaction) {
            let len = chain.len.load(Ordering::Relaxed);
            let last = chain.top.load(Ordering::Relaxed);
            // The highest slot that already holds what we found, if it may be re-used.
            let reuse = (0..len).rev().find(|&k| {
                // SAFETY: slot `k` < len is published and never written again.
                let slot = unsafe { (*chain.slots[k].get()).assume_init_ref() };
                if is_disposition(found.sa_sigaction) {
                    slot.sa_sigaction == found.sa_sigaction
                } else {
                    // Only a slot above the entry installed last: a handler in a slot at or
                    // below it may have been installed over that very entry (or one above
                    // it) and saved it as its predecessor; re-using its slot would let it
                    // chain back into itself past the skip in `pass_on`.
                    reuse_handlers
                        && last != NONE
                        && k > last
                        && same_action(slot, &found)
                        && !chain.spent[k].load(Ordering::Acquire)
                }
            });
            let level = match reuse {
                Some(k) => k,
                None if len == CHAIN_MAX => {
                    guarded = false; // documented limit: no more re-installs
                    break;
                }
                None => {
                    // SAFETY: slot `len` is not yet published (only we, under the lock, write
                    // slots).
                    unsafe { (*chain.slots[len].get()).write(found) };
                    chain.len.store(len + 1, Ordering::Release);
                    len
                }
            };
            // SAFETY: a zeroed sigaction plus the fields set below is a valid action.
            let mut ours: libc::sigaction = unsafe { std::mem::zeroed() };
            ours.sa_sigaction = ENTRIES[level] as usize;
            ours.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_NODEFER;
            // SAFETY: `ours.sa_mask` is a valid sigset to clear.
            unsafe { libc::sigemptyset(&mut ours.sa_mask) };
            let queried = found;
            // SAFETY: installs entry `level`, whose slot (published) holds `found` (or the
            // same action); `found` receives the action it replaced.
            if unsafe { libc::sigaction(sig, &ours, &mut found) } != 0 {
                break;
            }
            chain.top.store(level, Ordering::Release);
            // Normally `found` is what we queried, now chained in slot `level`; if it is
            // not, another thread installed a handler in between: chain that one too.
            if found.sa_sigaction == queried.sa_sigaction && found.sa_flags == queried.sa_flags {
                break;
            }
        }
    }
    guarded
}

/// [`install`] again (re-using slots for handlers already chained), if it ever ran (a region
/// was opened): puts ours back on top of a handler installed since, chaining it. For callers
/// that learn that one was (the binding, when JavaScript adds or removes a
/// `SIGBUS`/`SIGSEGV` listener and libuv changes the action). `false` when ours could not be
/// put back for lack of slots.
pub(crate) fn reinstall() -> bool {
    if CHAINS.iter().any(|c| c.len.load(Ordering::Acquire) > 0) {
        install(true)
    } else {
        true
    }
}

#[cfg(target_arch = "x86_64")]
fn context(uc: &mut libc::ucontext_t) -> (&mut i64, usize, usize) {
    let g = &mut uc.uc_mcontext.gregs;
    let (lo, hi) = (
        g[libc::REG_R8 as usize] as usize,
        g[libc::REG_R9 as usize] as usize,
    );
    (&mut g[libc::REG_RIP as usize], lo, hi)
}

#[cfg(target_arch = "aarch64")]
fn context(uc: &mut libc::ucontext_t) -> (&mut u64, usize, usize) {
    let m = &mut uc.uc_mcontext;
    let (lo, hi) = (m.regs[4] as usize, m.regs[5] as usize);
    (&mut m.pc, lo, hi)
}

/// Entry `K` of the handler: recovers our faults, passes every other one to `slots[K]`.
extern "C" fn entry<const K: usize>(
    sig: libc::c_int,
    info: *mut libc::siginfo_t,
    ctx: *mut libc::c_void,
) {
    if !info.is_null() && !ctx.is_null() {
        // SAFETY: non-null; the kernel (or a chaining handler passing ours its own arguments
        // or a copy of them) gives an SA_SIGINFO handler a valid siginfo and ucontext.
        let (code, addr, uc) = unsafe {
            (
                (*info).si_code,
                (*info).si_addr() as usize,
                &mut *ctx.cast::<libc::ucontext_t>(),
            )
        };
        // si_code > 0: raised by the kernel for a fault; a signal sent by kill/sigqueue/raise
        // (si_code <= 0) is never ours, whatever address it claims.
        if code > 0 {
            let (pc, lo, hi) = context(uc);
            let at = *pc as usize;
            if (nsm_guard_start as *const () as usize..nsm_guard_end as *const () as usize)
                .contains(&at)
                && (lo..hi).contains(&addr)
            {
                *pc = nsm_guard_fixup as *const () as usize as _;
                return;
            }
        }
    }
    // SAFETY: the handler's own arguments, passed on as received.
    unsafe { pass_on(K, sig, info, ctx) }
}

/// Hands a fault that is not ours to `slots[level]`, as the kernel would have delivered it.
///
/// # Safety
/// The handler's own arguments.
unsafe fn pass_on(
    level: usize,
    sig: libc::c_int,
    info: *mut libc::siginfo_t,
    ctx: *mut libc::c_void,
) {
    let Some(chain) = SIGNALS.iter().position(|&s| s == sig).map(|i| &CHAINS[i]) else {
        // SAFETY: the handler's arguments.
        return unsafe { call(None, sig, info, ctx) };
    };
    // A handler that re-installs itself "unless it is the current action" (a crash reporter
    // initialised twice) may sit in several slots, and its one saved predecessor is the entry
    // it was last installed over. A slot holding the action installed on top now has already
    // run for this fault (the kernel delivered it there, and it chained down to us); so has one
    // holding the same handler as a slot above it, up to the entry we installed last (the
    // fault came down through those). Calling it again would chain to us again, and so on until
    // the stack overflows: skip it. Below it is the link it was installed over (entry
    // `level - 1`'s slot), or for slot 0 the default action. One `sigaction` query. So a
    // handler function runs at most once per fault along the slots of the chain.
    // SAFETY: a zeroed sigaction is a valid out-parameter; querying is async-signal-safe.
    let mut top: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointers; a null new action only queries.
    let queried = unsafe { libc::sigaction(sig, std::ptr::null(), &mut top) } == 0;
    let len = chain.len.load(Ordering::Acquire);
    let last = chain.top.load(Ordering::Acquire).min(len.saturating_sub(1));
    let slot = |k: usize| {
        // SAFETY: slot `k` < len is published and never written again.
        unsafe { (*chain.slots[k].get()).assume_init_ref() }
    };
    let mut level = level;
    let action = loop {
        if level >= len {
            // SAFETY: the handler's arguments.
            return unsafe { call(None, sig, info, ctx) };
        }
        let action = slot(level);
        let handler = action.sa_sigaction;
        let ran = !is_disposition(handler)
            && ((queried && handler == top.sa_sigaction && !is_ours(top.sa_sigaction))
                || (level + 1..=last).any(|j| slot(j).sa_sigaction == handler));
        if !ran {
            break action;
        }
        if level == 0 {
            // SAFETY: the handler's arguments.
            return unsafe { call(None, sig, info, ctx) };
        }
        level -= 1;
    };
    let handler = action.sa_sigaction;
    if action.sa_flags & libc::SA_RESETHAND != 0
        && handler != libc::SIG_DFL
        && handler != libc::SIG_IGN
        && chain.spent[level].swap(true, Ordering::AcqRel)
    {
        // A one-shot handler already ran: the kernel would now take the default action.
        // SAFETY: the handler's arguments.
        return unsafe { call(None, sig, info, ctx) };
    }
    // SAFETY: the handler's arguments; `action` is a published slot.
    unsafe { call(Some(action), sig, info, ctx) }
}

/// Runs `action` (`None`: the default action) for this signal, emulating the kernel's
/// delivery: `SIG_IGN` ignores a sent signal, `SIG_DFL` (and `SIG_IGN` for a fault, which the
/// kernel cannot ignore) restores the default action and lets the fault happen again on
/// return or re-raises a sent signal; a handler runs with its `sa_mask` (and the signal itself
/// unless `SA_NODEFER`) blocked, with the 1- or 3-argument signature its `SA_SIGINFO` says.
///
/// # Safety
/// The handler's own arguments; `action` a published chain slot.
unsafe fn call(
    action: Option<&libc::sigaction>,
    sig: libc::c_int,
    info: *mut libc::siginfo_t,
    ctx: *mut libc::c_void,
) {
    // kill/raise/sigqueue (si_code <= 0), not a fault; without a siginfo we cannot tell, and
    // re-raising kills with the same signal either way.
    // SAFETY: `info` is non-null here and valid (the handler's contract).
    let sent = info.is_null() || unsafe { (*info).si_code } <= 0;
    let what = action.map_or(libc::SIG_DFL, |a| a.sa_sigaction);
    if what == libc::SIG_IGN && sent {
        return;
    }
    let Some(action) = action.filter(|_| what != libc::SIG_DFL && what != libc::SIG_IGN) else {
        // The default action: restore it, then let the fault happen again on return, or
        // re-raise a signal that was sent (unblocked, so that it acts now, as it would have).
        // SAFETY: a zeroed sigaction with SIG_DFL is a valid action, a zeroed sigset plus
        // sigaddset is valid; sigaction, pthread_sigmask and raise are async-signal-safe.
        unsafe {
            let mut dfl: libc::sigaction = std::mem::zeroed();
            dfl.sa_sigaction = libc::SIG_DFL;
            libc::sigemptyset(&mut dfl.sa_mask);
            libc::sigaction(sig, &dfl, std::ptr::null_mut());
            if sent {
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut set);
                libc::sigaddset(&mut set, sig);
                libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
                libc::raise(sig);
            }
        }
        return;
    };
    // Block what the kernel would have blocked for this action, restore after it returns (a
    // handler that leaves by siglongjmp restores its own saved mask).
    let mut mask = action.sa_mask;
    // SAFETY: zeroed sigset is a valid out-parameter; `mask` is a valid sigset.
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    if action.sa_flags & libc::SA_NODEFER == 0 {
        // SAFETY: `mask` is a valid sigset, `sig` a valid signal number.
        unsafe { libc::sigaddset(&mut mask, sig) };
    }
    // SAFETY: valid sigsets; pthread_sigmask is async-signal-safe.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &mask, &mut old) };
    if action.sa_flags & libc::SA_SIGINFO != 0 {
        // SAFETY: installed with SA_SIGINFO, so it has the three-argument signature.
        let f: Entry = unsafe { std::mem::transmute(what) };
        f(sig, info, ctx);
    } else {
        // SAFETY: a plain `sa_handler`.
        let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(what) };
        f(sig);
    }
    // SAFETY: `old` was filled by the call above.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
}
