//! Helpers of the fault-guard tests (`fault_guard*.rs`, Linux x86_64/aarch64 only): each of
//! those files includes this module.
#![allow(dead_code)] // not every test file uses every helper

/// The page size the tests assume (x86_64 and the usual aarch64 Linux kernels).
pub const PAGE: usize = 4096;

/// Truncates `/dev/shm/<name>` to `len` bytes, as a peer process would.
pub fn truncate(name: &str, len: u64) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/dev/shm/{name}"))
        .unwrap()
        .set_len(len)
        .unwrap();
}

/// A child scenario's first step. Rust's runtime installs a stack-overflow handler for
/// SIGBUS/SIGSEGV in every Rust executable (it resets the default action and returns, so a
/// *sent* SIGBUS would be survived); a Node process has no such handler: start from the
/// default actions. Rust also gives each thread an 8 KiB alternate signal stack (for its
/// stack-overflow message), too small for two nested signal frames (a re-raising handler); a
/// Node thread has none: use a roomy one, as a process that sets one up would.
pub fn child_signal_setup() {
    for sig in [libc::SIGBUS, libc::SIGSEGV] {
        // SAFETY: a zeroed sigaction with SIG_DFL is a valid action.
        unsafe {
            let mut dfl: libc::sigaction = std::mem::zeroed();
            dfl.sa_sigaction = libc::SIG_DFL;
            libc::sigaction(sig, &dfl, std::ptr::null_mut());
        }
    }
    let alt = Box::leak(vec![0u8; 1 << 18].into_boxed_slice());
    let ss = libc::stack_t {
        ss_sp: alt.as_mut_ptr().cast(),
        ss_flags: 0,
        ss_size: alt.len(),
    };
    // SAFETY: a leaked (never freed) buffer as this thread's alternate stack.
    unsafe { libc::sigaltstack(&ss, std::ptr::null_mut()) };
}

extern "C" {
    fn nsm_guard_start();
    pub fn nsm_guard_fixup();
}

/// Calls the installed SIGBUS action the way a fault inside our copy routine on `addr` would,
/// with `si_code` as given: >0 a fault, <=0 a signal sent by kill/sigqueue with a forged
/// address. Returns the program counter the handler left in the context.
pub fn call_installed_as_if_in_routine(code: libc::c_int, addr: usize) -> usize {
    // SAFETY: zeroed siginfo/ucontext are valid plain data; the fields written below are the
    // kernel's layout (si_signo, si_errno, si_code, then the union at offset 16 on 64-bit
    // Linux, whose first member for SIGBUS is si_addr); the installed action is ours (an
    // SA_SIGINFO handler).
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        info.si_signo = libc::SIGBUS;
        info.si_code = code;
        std::ptr::write(
            (std::ptr::addr_of_mut!(info) as *mut u8)
                .add(16)
                .cast::<usize>(),
            addr,
        );
        assert_eq!(info.si_addr() as usize, addr);
        let mut uc: libc::ucontext_t = std::mem::zeroed();
        let pc = nsm_guard_start as *const () as usize + 1;
        #[cfg(target_arch = "x86_64")]
        {
            let g = &mut uc.uc_mcontext.gregs;
            g[libc::REG_RIP as usize] = pc as i64;
            g[libc::REG_R8 as usize] = addr as i64;
            g[libc::REG_R9 as usize] = addr as i64 + 4;
        }
        #[cfg(target_arch = "aarch64")]
        {
            uc.uc_mcontext.pc = pc as u64;
            uc.uc_mcontext.regs[4] = addr as u64;
            uc.uc_mcontext.regs[5] = addr as u64 + 4;
        }
        let mut cur: libc::sigaction = std::mem::zeroed();
        libc::sigaction(libc::SIGBUS, std::ptr::null(), &mut cur);
        let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
            std::mem::transmute(cur.sa_sigaction);
        f(libc::SIGBUS, &mut info, std::ptr::addr_of_mut!(uc).cast());
        #[cfg(target_arch = "x86_64")]
        return uc.uc_mcontext.gregs[libc::REG_RIP as usize] as usize;
        #[cfg(target_arch = "aarch64")]
        return uc.uc_mcontext.pc as usize;
    }
}
