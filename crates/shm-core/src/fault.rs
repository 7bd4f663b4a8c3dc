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
//! * **The handler is async-signal-safe**: it reads the context, atomics and the immutable
//!   chain of previous actions; the only calls it makes are `sigaction` and `raise`
//!   (async-signal-safe in POSIX) and the previous handlers themselves.
//! * **Every fault that is not ours goes on, untouched, to the handler installed before
//!   ours** (`sa_sigaction` with `SA_SIGINFO`, else `sa_handler`): `SIG_DFL` is honoured by
//!   restoring the default action and letting the fault happen again (or re-raising a signal
//!   that was sent, not caused), `SIG_IGN` by ignoring a sent signal (a fault cannot be
//!   ignored: the kernel kills, so we restore the default action). Node installs a SIGSEGV
//!   handler at start-up for WebAssembly's bounds checks, Electron crash reporters install
//!   theirs before any addon loads: both stay in the chain behind ours.
//! * **A handler installed after ours** becomes the first to see every fault. One that chains
//!   to its predecessor (as crash reporters and wasm trap handlers do) calls ours, which then
//!   recovers our faults as usual. One that does not chain would see our faults as its own, so
//!   [`install`] (called by every `Region::open`) checks whether ours is still the installed
//!   action and, if not, installs ours again on top, keeping the one found as the first link
//!   of the chain. A link that chains back to us is recognised by its `siginfo` pointer
//!   (the same fault coming back down) and continues with the next link down. Limits: a
//!   handler installed after ours catches our faults until the next `Region::open`; one that
//!   passes faults on by re-installing ours and returning (so the instruction faults again)
//!   would bounce between the two: after [`LOOP_LIMIT`] identical faults in a row (same
//!   instruction, same address) the later links are skipped.
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
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// This platform recovers faults in the routines below; `Region` needs no size re-check.
pub(crate) const GUARDED: bool = true;

/// A routine touched a page the segment no longer has.
#[derive(Debug)]
pub(crate) struct Fault;

/// The error for a fault on bytes the segment still covers (a `tmpfs` that cannot provide
/// the page, or a peer that shrank and grew the segment again in between).
pub(crate) fn unexplained() -> std::io::Error {
    std::io::Error::from_raw_os_error(libc::ENOMEM)
}

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
/// re-install over a handler installed after ours.
const CHAIN_MAX: usize = 8;

/// Identical foreign faults in a row after which later links are skipped (see the module docs).
pub(crate) const LOOP_LIMIT: usize = 16;

/// The actions ours passes foreign faults to. `slots[0]` is the action found at the first
/// install; `slots[k]` the one found on top of ours at the k-th re-install. A slot is written
/// once, under [`INSTALL`], before `len` is raised past it (Release), and never changes after:
/// the handler reads only slots below the `len` it loaded (Acquire).
struct Chain {
    len: AtomicUsize,
    slots: [UnsafeCell<MaybeUninit<libc::sigaction>>; CHAIN_MAX],
}

// SAFETY: see `Chain`: each slot is written once before it is published and only read after.
unsafe impl Sync for Chain {}

#[allow(clippy::declare_interior_mutable_const)] // only an array initialiser
const EMPTY_SLOT: UnsafeCell<MaybeUninit<libc::sigaction>> = UnsafeCell::new(MaybeUninit::uninit());
#[allow(clippy::declare_interior_mutable_const)]
const EMPTY_CHAIN: Chain = Chain {
    len: AtomicUsize::new(0),
    slots: [EMPTY_SLOT; CHAIN_MAX],
};
static CHAINS: [Chain; 2] = [EMPTY_CHAIN; 2];

/// Serialises installs (never taken by the handler).
static INSTALL: Mutex<()> = Mutex::new(());

/// Foreign faults being passed down a chain right now, by `siginfo` address (one slot per
/// fault in flight on some thread; 0 = free), and the chain level each was last passed to.
const IN_FLIGHT: usize = 64;
#[allow(clippy::declare_interior_mutable_const)]
const ZERO: AtomicUsize = AtomicUsize::new(0);
static FLIGHT_INFO: [AtomicUsize; IN_FLIGHT] = [ZERO; IN_FLIGHT];
static FLIGHT_LEVEL: [AtomicUsize; IN_FLIGHT] = [ZERO; IN_FLIGHT];

/// The last foreign fault (instruction, address) and how many times in a row it came.
static LAST_PC: AtomicUsize = AtomicUsize::new(0);
static LAST_ADDR: AtomicUsize = AtomicUsize::new(0);
static REPEATS: AtomicUsize = AtomicUsize::new(0);

/// Installs the handler for SIGBUS and SIGSEGV if it is not the installed action (the first
/// time, or after a later `sigaction` replaced it), chaining to what it finds. Called by every
/// `Region::open`; two `sigaction` queries when nothing changed.
pub(crate) fn install() {
    let _lock = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    for (chain, &sig) in CHAINS.iter().zip(SIGNALS.iter()) {
        // SAFETY: a zeroed sigaction is a valid out-parameter; a null new action only queries.
        let mut current: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: valid pointers; querying has no effect.
        if unsafe { libc::sigaction(sig, std::ptr::null(), &mut current) } != 0 {
            continue;
        }
        if current.sa_sigaction == handler as *const () as usize {
            continue;
        }
        let len = chain.len.load(Ordering::Relaxed);
        if len == CHAIN_MAX {
            continue; // documented limit: no more re-installs
        }
        // SAFETY: slot `len` is not yet published (only we, under the lock, write slots).
        unsafe { (*chain.slots[len].get()).write(current) };
        chain.len.store(len + 1, Ordering::Release);
        // SAFETY: a zeroed sigaction plus the fields set below is a valid action.
        let mut ours: libc::sigaction = unsafe { std::mem::zeroed() };
        ours.sa_sigaction = handler as *const () as usize;
        ours.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_NODEFER;
        // SAFETY: `ours.sa_mask` is a valid sigset to clear.
        unsafe { libc::sigemptyset(&mut ours.sa_mask) };
        // SAFETY: installs a handler whose chain (published above) already holds `current`.
        unsafe { libc::sigaction(sig, &ours, std::ptr::null_mut()) };
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

extern "C" fn handler(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel (or a chaining handler passing ours its own arguments) gives an
    // SA_SIGINFO handler a valid siginfo and ucontext for this thread.
    let (uc, addr) = unsafe {
        (
            &mut *ctx.cast::<libc::ucontext_t>(),
            (*info).si_addr() as usize,
        )
    };
    let (pc, lo, hi) = context(uc);
    let at = *pc as usize;
    if (nsm_guard_start as *const () as usize..nsm_guard_end as *const () as usize).contains(&at)
        && (lo..hi).contains(&addr)
    {
        *pc = nsm_guard_fixup as *const () as usize as _;
        return;
    }
    // SAFETY: as above.
    unsafe { pass_on(sig, info, ctx, at, addr) }
}

/// Hands a fault that is not ours to the chain, top link first.
///
/// # Safety
/// The handler's own arguments.
unsafe fn pass_on(
    sig: libc::c_int,
    info: *mut libc::siginfo_t,
    ctx: *mut libc::c_void,
    pc: usize,
    addr: usize,
) {
    let chain = &CHAINS[usize::from(sig != libc::SIGBUS)];
    let len = chain.len.load(Ordering::Acquire);
    let key = info as usize;
    // Coming back down from a link we called (it chained to us): continue one level lower.
    if let Some(i) = (0..IN_FLIGHT).find(|&i| FLIGHT_INFO[i].load(Ordering::Acquire) == key) {
        let level = FLIGHT_LEVEL[i].load(Ordering::Relaxed);
        if level == 0 {
            // The oldest link called us back: nothing below it; take the default action.
            // SAFETY: the handler's arguments.
            return unsafe { call(None, sig, info, ctx) };
        }
        FLIGHT_LEVEL[i].store(level - 1, Ordering::Relaxed);
        // SAFETY: slot `level - 1` < len is published.
        return unsafe {
            call(
                Some((*chain.slots[level - 1].get()).assume_init_ref()),
                sig,
                info,
                ctx,
            )
        };
    }
    if len == 0 {
        // SAFETY: the handler's arguments.
        return unsafe { call(None, sig, info, ctx) };
    }
    // A fresh fault: the top link first, unless the same fault keeps coming back (a later link
    // that re-installs ours and returns), then the oldest link.
    let same_pc = LAST_PC.swap(pc, Ordering::Relaxed) == pc;
    let same_addr = LAST_ADDR.swap(addr, Ordering::Relaxed) == addr;
    let repeats = if same_pc && same_addr {
        REPEATS.fetch_add(1, Ordering::Relaxed) + 1
    } else {
        REPEATS.store(0, Ordering::Relaxed);
        0
    };
    let top = if repeats >= LOOP_LIMIT { 0 } else { len - 1 };
    let slot = (0..IN_FLIGHT).find(|&i| {
        FLIGHT_INFO[i]
            .compare_exchange(0, key, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    });
    // A full table: go straight to the oldest link (nothing can come back then).
    let top = if slot.is_some() { top } else { 0 };
    if let Some(i) = slot {
        FLIGHT_LEVEL[i].store(top, Ordering::Relaxed);
    }
    // SAFETY: slot `top` < len is published.
    unsafe {
        call(
            Some((*chain.slots[top].get()).assume_init_ref()),
            sig,
            info,
            ctx,
        )
    };
    if let Some(i) = slot {
        FLIGHT_INFO[i].store(0, Ordering::Release);
    }
}

/// Runs `action` (`None`: the default action) for this fault.
///
/// # Safety
/// The handler's own arguments; `action` a published chain slot.
unsafe fn call(
    action: Option<&libc::sigaction>,
    sig: libc::c_int,
    info: *mut libc::siginfo_t,
    ctx: *mut libc::c_void,
) {
    // SAFETY: `info` is valid (the handler's contract).
    let sent = unsafe { (*info).si_code } <= 0; // kill/raise/sigqueue, not a fault
    let what = action.map_or(libc::SIG_DFL, |a| a.sa_sigaction);
    if what == libc::SIG_IGN && sent {
        return;
    }
    if what == libc::SIG_DFL || what == libc::SIG_IGN {
        // The default action (an ignored fault kills anyway): restore it, then let the fault
        // happen again on return, or re-raise a signal that was sent.
        // SAFETY: a zeroed sigaction with SIG_DFL is a valid action; sigaction and raise are
        // async-signal-safe.
        unsafe {
            let mut dfl: libc::sigaction = std::mem::zeroed();
            dfl.sa_sigaction = libc::SIG_DFL;
            libc::sigaction(sig, &dfl, std::ptr::null_mut());
            if sent {
                libc::raise(sig);
            }
        }
        return;
    }
    let action = action.expect("SIG_DFL handled above");
    if action.sa_flags & libc::SA_SIGINFO != 0 {
        // SAFETY: installed with SA_SIGINFO, so it has the three-argument signature.
        let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
            unsafe { std::mem::transmute(what) };
        f(sig, info, ctx);
    } else {
        // SAFETY: a plain `sa_handler`.
        let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(what) };
        f(sig);
    }
}
