//! The fault guard (src/fault.rs) against a peer that shrinks a segment: copies, atomics, `wait`
//! and `notify` past the new end are errors, from several threads at once; and the process's
//! own SIGBUS handler, installed before or after ours, still gets every fault that is not
//! ours. The handler scenarios run in child processes (this test binary, re-run with
//! `FAULT_GUARD_CHILD=<scenario>`), since they end in a signal or `_exit`.
#![cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]

use shm_core::{CreateOptions, Region, RegionError, Segment, WaitOutcome};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

mod common;
use common::{unique, Cleanup};

const PAGE: usize = 4096;

/// A 3-page segment filled with 0x5a, then shrunk by a "peer" to one page.
fn shrunk_region(tag: &str) -> (Cleanup, Arc<Region>) {
    let name = unique(tag);
    let seg = Segment::create(&name, 3 * PAGE as u64, CreateOptions::default()).unwrap();
    // SAFETY: the only truncation is the one below, and nothing here reads past the new end
    // except through the region's guarded operations (or on purpose, in a child process).
    let region = Arc::new(unsafe { Region::open(seg, None) }.unwrap());
    region.write(0, &[0x5a; 3 * PAGE]).unwrap();
    truncate(&name, PAGE as u64);
    (Cleanup(name), region)
}

fn truncate(name: &str, len: u64) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/dev/shm/{name}"))
        .unwrap()
        .set_len(len)
        .unwrap();
}

fn is_shrunk(r: Result<impl std::fmt::Debug, RegionError>, needed: u64) -> bool {
    matches!(r, Err(RegionError::Shrunk { size, needed: n }) if size == PAGE as u64 && n == needed)
}

#[test]
fn atomics_wait_and_notify_past_a_shrunk_end_are_errors_not_sigbus() {
    let (_c, r) = shrunk_region("atom");
    let off = 2 * PAGE + 8;
    let needed = off as u64 + 4;
    assert!(is_shrunk(r.load(off), needed), "load");
    assert!(is_shrunk(r.store(off, 1), needed), "store");
    assert!(is_shrunk(r.add(off, 1), needed), "add");
    assert!(
        is_shrunk(r.compare_exchange(off, 0, 1), needed),
        "compare_exchange"
    );
    assert!(
        is_shrunk(r.wait(off, 0, Some(Duration::from_millis(50))), needed),
        "wait"
    );
    assert!(
        is_shrunk(r.wait(PAGE, 0x5a5a_5a5a, None), PAGE as u64 + 4),
        "wait on the first lost word"
    );
    assert!(is_shrunk(r.notify(off, 1), needed), "notify");
    // The last word still there works, and keeps working after the faults.
    let last = PAGE - 4;
    assert_eq!(r.load(last).unwrap(), 0x5a5a_5a5a);
    assert_eq!(r.add(last, 1).unwrap(), 0x5a5a_5a5a);
    assert_eq!(
        r.compare_exchange(last, 0x5a5a_5a5b, 7).unwrap(),
        0x5a5a_5a5b
    );
    assert_eq!(r.store(last, 9).unwrap(), 9);
    assert_eq!(r.wait(last, 8, None).unwrap(), WaitOutcome::NotEqual);
    assert_eq!(
        r.wait(last, 9, Some(Duration::from_millis(5))).unwrap(),
        WaitOutcome::TimedOut
    );
    assert_eq!(r.notify(last, 1).unwrap(), 0);
}

#[test]
fn a_copy_that_reaches_a_lost_page_copies_nothing() {
    let (c, r) = shrunk_region("copy");
    let mut dst = [0xeeu8; 16];
    assert!(is_shrunk(r.read(PAGE - 8, &mut dst), PAGE as u64 + 8));
    assert_eq!(dst, [0xee; 16], "read copied nothing");
    assert!(is_shrunk(r.write(PAGE - 8, &[1; 16]), PAGE as u64 + 8));
    let mut left = [0u8; 8];
    r.read(PAGE - 8, &mut left).unwrap();
    assert_eq!(left, [0x5a; 8], "write changed nothing of what is left");
    // The last byte still there, exactly.
    let mut one = [0u8; 1];
    r.read(PAGE - 1, &mut one).unwrap();
    assert_eq!(one, [0x5a]);
    assert!(is_shrunk(r.read(PAGE, &mut one), PAGE as u64 + 1));
    drop(c);
}

#[test]
fn several_threads_fault_and_copy_at_once() {
    let regions: Vec<_> = (0..4).map(|i| shrunk_region(&format!("mt{i}"))).collect();
    let threads: Vec<_> = regions
        .iter()
        .map(|(_, r)| {
            let r = Arc::clone(r);
            std::thread::spawn(move || {
                let mut buf = [0u8; 64];
                for i in 0..2000 {
                    let off = (i % 64) * 64;
                    r.read(off, &mut buf).unwrap();
                    assert_eq!(buf, [0x5a; 64]);
                    assert!(is_shrunk(
                        r.read(PAGE + off, &mut buf),
                        (PAGE + off + 64) as u64
                    ));
                    assert!(is_shrunk(
                        r.add(2 * PAGE + off, 1),
                        (2 * PAGE + off + 4) as u64
                    ));
                    r.add(off, 0).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

// ---- the process's own handlers (child processes) ----

static mut OWN_CALLS: usize = 0;

/// The test's own handler: counts, says so on stderr, then exits 42 (a fault it cannot fix).
extern "C" fn own_exit(_sig: libc::c_int, _info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    let msg = b"own handler: SIGBUS\n";
    // SAFETY: write(2) and _exit(2) are async-signal-safe; the buffer is static.
    unsafe {
        libc::write(2, msg.as_ptr().cast(), msg.len());
        libc::_exit(42);
    }
}

static mut OWN_PREV: std::mem::MaybeUninit<libc::sigaction> = std::mem::MaybeUninit::uninit();

/// A handler that counts and chains to the action it replaced (as crash reporters do).
extern "C" fn own_chaining(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: single-threaded child; OWN_PREV was written before this was installed.
    unsafe {
        OWN_CALLS += 1;
        let msg = b"own chaining handler\n";
        libc::write(2, msg.as_ptr().cast(), msg.len());
        let prev = (*std::ptr::addr_of!(OWN_PREV)).assume_init_ref();
        if prev.sa_flags & libc::SA_SIGINFO != 0 && prev.sa_sigaction > 1 {
            let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                std::mem::transmute(prev.sa_sigaction);
            f(sig, info, ctx);
        } else {
            let mut dfl: libc::sigaction = std::mem::zeroed();
            dfl.sa_sigaction = libc::SIG_DFL;
            libc::sigaction(sig, &dfl, std::ptr::null_mut());
        }
    }
}

fn install_own(f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void)) {
    // SAFETY: a zeroed sigaction with a handler and SA_SIGINFO is valid; OWN_PREV receives the
    // old action before any fault can call `own_chaining`.
    unsafe {
        let mut act: libc::sigaction = std::mem::zeroed();
        act.sa_sigaction = f as *const () as usize;
        act.sa_flags = libc::SA_SIGINFO | libc::SA_NODEFER;
        libc::sigemptyset(&mut act.sa_mask);
        libc::sigaction(
            libc::SIGBUS,
            &act,
            (*std::ptr::addr_of_mut!(OWN_PREV)).as_mut_ptr(),
        );
    }
}

/// A read of a lost page outside the guard: a fault that is not ours.
fn foreign_fault(r: &Region) -> u8 {
    // SAFETY: deliberately not safe: the page past the shrunk end faults (the point).
    unsafe { std::ptr::read_volatile(r.as_ptr().as_ptr().add(2 * PAGE)) }
}

fn ours_recovered(r: &Region) {
    assert!(is_shrunk(r.load(2 * PAGE), 2 * PAGE as u64 + 4));
    let mut b = [0u8; 8];
    assert!(is_shrunk(r.read(PAGE * 2, &mut b), 2 * PAGE as u64 + 8));
    eprintln!("ours recovered");
}

/// The child side: runs one scenario and ends in a signal or `_exit`. Skipped in the parent.
#[test]
fn child_scenario() {
    let Ok(scenario) = std::env::var("FAULT_GUARD_CHILD") else {
        return;
    };
    // Rust's runtime installs a stack-overflow handler for SIGBUS/SIGSEGV in every Rust
    // executable (it resets the default action and returns, so a *sent* SIGBUS would be
    // survived); a Node process has no such handler. Start from the default actions.
    for sig in [libc::SIGBUS, libc::SIGSEGV] {
        // SAFETY: a zeroed sigaction with SIG_DFL is a valid action.
        unsafe {
            let mut dfl: libc::sigaction = std::mem::zeroed();
            dfl.sa_sigaction = libc::SIG_DFL;
            libc::sigaction(sig, &dfl, std::ptr::null_mut());
        }
    }
    match scenario.as_str() {
        // Our handler's default: a foreign fault still kills with SIGBUS.
        "none" => {
            let (_c, r) = shrunk_region("c-none");
            ours_recovered(&r);
            foreign_fault(&r);
        }
        // A raised (sent, not caused) SIGBUS still kills with SIGBUS.
        "raise" => {
            let (_c, r) = shrunk_region("c-raise");
            ours_recovered(&r);
            // SAFETY: raise(3) is always safe to call.
            unsafe { libc::raise(libc::SIGBUS) };
        }
        // The test's handler installed before ours (before the first region).
        "before" => {
            install_own(own_exit);
            let (_c, r) = shrunk_region("c-before");
            ours_recovered(&r);
            foreign_fault(&r);
        }
        // Installed after ours and not chaining: the next Region::open puts ours back on top.
        "after" => {
            let (_c, r) = shrunk_region("c-after");
            install_own(own_exit);
            let (_c2, _r2) = shrunk_region("c-after2");
            ours_recovered(&r);
            foreign_fault(&r);
        }
        // Installed after ours and chaining to ours, no re-install in between: ours recovers
        // its faults through it; a foreign fault reaches it and then the default action.
        "after-chaining" => {
            let (_c, r) = shrunk_region("c-ach");
            install_own(own_chaining);
            ours_recovered(&r);
            // SAFETY: single-threaded.
            let calls = unsafe { OWN_CALLS };
            eprintln!("own handler saw {calls} of our faults");
            foreign_fault(&r);
        }
        // The same, with ours re-installed on top: the fault passes ours → own → ours → default
        // without looping.
        "after-chaining-reinstalled" => {
            let (_c, r) = shrunk_region("c-achr");
            install_own(own_chaining);
            let (_c2, _r2) = shrunk_region("c-achr2");
            ours_recovered(&r);
            // SAFETY: single-threaded.
            let calls = unsafe { OWN_CALLS };
            eprintln!("own handler saw {calls} of our faults");
            foreign_fault(&r);
        }
        other => panic!("unknown scenario {other}"),
    }
    eprintln!("survived");
    std::process::exit(0);
}

fn run_child(scenario: &str) -> (Option<i32>, Option<i32>, String) {
    use std::io::Read;
    use std::os::unix::process::ExitStatusExt;
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_scenario",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("FAULT_GUARD_CHILD", scenario)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A handler that loops (a fault passed round in a circle) must fail the test, not hang it.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("{scenario}: the child hung (a fault going round in a loop?)");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (status.code(), status.signal(), stderr)
}

#[test]
fn a_foreign_fault_with_no_handler_of_the_process_still_kills_with_sigbus() {
    for scenario in ["none", "raise"] {
        let (code, signal, err) = run_child(scenario);
        assert_eq!(
            (code, signal),
            (None, Some(libc::SIGBUS)),
            "{scenario}: {err}"
        );
        assert!(err.contains("ours recovered"), "{scenario}: {err}");
        assert!(!err.contains("survived"), "{scenario}: {err}");
    }
}

#[test]
fn a_handler_installed_before_or_after_ours_still_gets_the_faults_that_are_not_ours() {
    for scenario in ["before", "after"] {
        let (code, signal, err) = run_child(scenario);
        assert_eq!((code, signal), (Some(42), None), "{scenario}: {err}");
        assert!(err.contains("ours recovered"), "{scenario}: {err}");
        assert_eq!(
            err.matches("own handler: SIGBUS").count(),
            1,
            "{scenario}: {err}"
        );
    }
}

#[test]
fn a_chaining_handler_installed_after_ours_passes_our_faults_back_and_gets_the_foreign_one() {
    // Without re-install it sees our two faults first (and passes them to us), then the
    // foreign one; re-installed, ours sees ours first and it only sees the foreign one.
    for (scenario, ours_seen) in [("after-chaining", 2), ("after-chaining-reinstalled", 0)] {
        let (code, signal, err) = run_child(scenario);
        assert_eq!(
            (code, signal),
            (None, Some(libc::SIGBUS)),
            "{scenario}: {err}"
        );
        assert!(err.contains("ours recovered"), "{scenario}: {err}");
        assert!(
            err.contains(&format!("own handler saw {ours_seen} of our faults")),
            "{scenario}: {err}"
        );
        assert_eq!(
            err.matches("own chaining handler").count(),
            ours_seen + 1,
            "{scenario}: {err}"
        );
    }
}
