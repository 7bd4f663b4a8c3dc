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
mod guard;
use common::{unique, Cleanup};
use guard::{call_installed_as_if_in_routine, nsm_guard_fixup, truncate, PAGE};

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

// ---- handlers as crash reporters, probing libraries and report-then-re-raise tools write them
// (issue 20 review, break20/) ----

static mut OWN_PREV_ANY: std::mem::MaybeUninit<libc::sigaction> = std::mem::MaybeUninit::uninit();

fn say(msg: &[u8]) {
    // SAFETY: write(2) is async-signal-safe; `msg` is a valid buffer.
    unsafe { libc::write(2, msg.as_ptr().cast(), msg.len()) };
}

/// A one-shot crash handler (`SA_RESETHAND`): reports and returns, so the fault comes back
/// and the (reset) default action kills. Counts its runs; a loop ends in `_exit(99)`.
extern "C" fn own_oneshot(_sig: libc::c_int, _info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // SAFETY: single-threaded child; write/_exit are async-signal-safe.
    unsafe {
        OWN_CALLS += 1;
        say(b"one-shot handler ran\n");
        // Run as the kernel would: its sa_mask (SIGUSR1) and the signal itself blocked.
        let mut now: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut now);
        if libc::sigismember(&now, libc::SIGUSR1) == 1 && libc::sigismember(&now, libc::SIGBUS) == 1
        {
            say(b"mask as delivered\n");
        }
        if OWN_CALLS > 50 {
            say(b"looping: _exit(99)\n");
            libc::_exit(99);
        }
    }
}

/// Reports, re-installs the action it replaced and re-raises (Python's faulthandler does so).
extern "C" fn own_reraise(sig: libc::c_int, _info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // SAFETY: single-threaded child; OWN_PREV_ANY was written before this was installed;
    // sigaction and raise are async-signal-safe.
    unsafe {
        OWN_CALLS += 1;
        say(b"re-raising handler ran\n");
        if OWN_CALLS > 50 {
            say(b"looping: _exit(99)\n");
            libc::_exit(99);
        }
        libc::sigaction(
            sig,
            (*std::ptr::addr_of!(OWN_PREV_ANY)).as_ptr(),
            std::ptr::null_mut(),
        );
        libc::raise(sig);
    }
}

/// Chains to the action it replaced with a *copy* of `siginfo` (some crash reporters do).
extern "C" fn own_copy_chain(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: single-threaded child; OWN_PREV_ANY was written before this was installed.
    unsafe {
        OWN_CALLS += 1;
        say(b"copy-chaining handler ran\n");
        if OWN_CALLS > 50 {
            say(b"looping: _exit(99)\n");
            libc::_exit(99);
        }
        let mut copy: libc::siginfo_t = std::ptr::read(info);
        let prev = (*std::ptr::addr_of!(OWN_PREV_ANY)).assume_init_ref();
        if prev.sa_flags & libc::SA_SIGINFO != 0 && prev.sa_sigaction > 1 {
            let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                std::mem::transmute(prev.sa_sigaction);
            f(sig, &mut copy, ctx);
        } else {
            let mut dfl: libc::sigaction = std::mem::zeroed();
            dfl.sa_sigaction = libc::SIG_DFL;
            libc::sigaction(sig, &dfl, std::ptr::null_mut());
        }
    }
}

/// Installs `f` for SIGBUS with `flags` (plus `SA_SIGINFO`), keeping the replaced action.
fn install_flags(
    f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void),
    flags: libc::c_int,
) {
    // SAFETY: a zeroed sigaction with a handler is valid; OWN_PREV_ANY receives the old action
    // before any fault can reach `f`.
    unsafe {
        let mut act: libc::sigaction = std::mem::zeroed();
        act.sa_sigaction = f as *const () as usize;
        act.sa_flags = libc::SA_SIGINFO | flags;
        libc::sigemptyset(&mut act.sa_mask);
        libc::sigaddset(&mut act.sa_mask, libc::SIGUSR1);
        libc::sigaction(
            libc::SIGBUS,
            &act,
            (*std::ptr::addr_of_mut!(OWN_PREV_ANY)).as_mut_ptr(),
        );
    }
}

/// A library that probes memory under `sigsetjmp` and leaves its SIGBUS handler by
/// `siglongjmp` (written in C: Rust cannot call `sigsetjmp` soundly), built with the system C
/// compiler; `None` when there is none.
struct Prober {
    install: extern "C" fn(),
    probe: extern "C" fn(*const u8) -> libc::c_int,
}

const PROBER_C: &str = r#"
#include <signal.h>
#include <setjmp.h>
#include <string.h>
static sigjmp_buf jb;
static volatile sig_atomic_t armed;
static void h(int sig, siginfo_t *i, void *u) {
  (void)i; (void)u;
  if (armed) { armed = 0; siglongjmp(jb, 1); }
  signal(sig, SIG_DFL);
}
void nsm_test_prober_install(void) {
  struct sigaction sa; memset(&sa, 0, sizeof sa); sigemptyset(&sa.sa_mask);
  sa.sa_sigaction = h; sa.sa_flags = SA_SIGINFO;
  sigaction(SIGBUS, &sa, 0);
}
int nsm_test_probe(const volatile char *p) {
  if (sigsetjmp(jb, 1)) return 1;
  armed = 1; (void)*p; armed = 0; return 0;
}
"#;

fn prober() -> Option<Prober> {
    let dir = std::env::temp_dir().join(format!("nsm-prober-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    let src = dir.join("prober.c");
    let lib = dir.join("prober.so");
    std::fs::write(&src, PROBER_C).ok()?;
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let ok = Command::new(&cc)
        .args(["-shared", "-fPIC", "-O1", "-o"])
        .arg(&lib)
        .arg(&src)
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        return None;
    }
    let path = std::ffi::CString::new(lib.to_str()?).ok()?;
    // SAFETY: a C library we just built; its symbols have the declared signatures.
    unsafe {
        let h = libc::dlopen(path.as_ptr(), libc::RTLD_NOW);
        let _ = std::fs::remove_dir_all(&dir);
        if h.is_null() {
            return None;
        }
        let install = libc::dlsym(h, c"nsm_test_prober_install".as_ptr());
        let probe = libc::dlsym(h, c"nsm_test_probe".as_ptr());
        if install.is_null() || probe.is_null() {
            return None;
        }
        Some(Prober {
            install: std::mem::transmute::<*mut libc::c_void, extern "C" fn()>(install),
            probe: std::mem::transmute::<*mut libc::c_void, extern "C" fn(*const u8) -> libc::c_int>(
                probe,
            ),
        })
    }
}

/// Whether a C compiler exists; else the `SKIPPED` line, and `false` (a failure under CI=true).
fn have_cc(what: &str) -> bool {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    if Command::new(&cc)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return true;
    }
    println!("SKIPPED {what}: a C compiler ({cc}) missing (see scripts/provision-ci.sh)");
    let ci = std::env::var("CI").unwrap_or_default().to_lowercase();
    assert!(
        ci != "true" && ci != "1",
        "{what}: CI=true, where a skip is a failure"
    );
    false
}

fn probes(p: &Prober, r: &Region) {
    for k in 0..4 {
        // SAFETY: the prober reads one byte under sigsetjmp; the page is gone (the point).
        let faulted = (p.probe)(unsafe { r.as_ptr().as_ptr().add(2 * PAGE) });
        eprintln!("probe {k} faulted={faulted}");
        ours_recovered(r);
    }
}

/// The child side: runs one scenario and ends in a signal or `_exit`. Skipped in the parent.
#[test]
fn child_scenario() {
    let Ok(scenario) = std::env::var("FAULT_GUARD_CHILD") else {
        return;
    };
    guard::child_signal_setup();
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
        // A one-shot (SA_RESETHAND) handler installed before ours: runs once, then the default.
        "oneshot-before" => {
            install_flags(own_oneshot, libc::SA_RESETHAND);
            let (_c, r) = shrunk_region("c-osb");
            ours_recovered(&r);
            foreign_fault(&r);
        }
        // The same installed after ours, ours re-installed on top by the next open.
        "oneshot-after" => {
            let (_c, r) = shrunk_region("c-osa");
            install_flags(own_oneshot, libc::SA_RESETHAND);
            let (_c2, _r2) = shrunk_region("c-osa2");
            ours_recovered(&r);
            foreign_fault(&r);
        }
        // Installed after ours (then ours on top again): re-installs ours and re-raises.
        "reraise-after" => {
            let (_c, r) = shrunk_region("c-rra");
            install_flags(own_reraise, libc::SA_NODEFER);
            let (_c2, _r2) = shrunk_region("c-rra2");
            ours_recovered(&r);
            foreign_fault(&r);
        }
        // Installed after ours (then ours on top again): chains with a copy of siginfo.
        "copychain-after" => {
            let (_c, r) = shrunk_region("c-cca");
            install_flags(own_copy_chain, 0);
            let (_c2, _r2) = shrunk_region("c-cca2");
            ours_recovered(&r);
            foreign_fault(&r);
        }
        // A memory-probing library (sigsetjmp/siglongjmp) before or after ours: every probe of
        // a lost page is recovered by it, ours keep being recovered by us.
        "longjmp-before" | "longjmp-after" => {
            let p = prober().expect("the prober library builds");
            if scenario == "longjmp-before" {
                (p.install)();
            }
            let (_c, r) = shrunk_region("c-lj");
            if scenario == "longjmp-after" {
                (p.install)();
                let (_c2, _r2) = shrunk_region("c-lj2");
            }
            probes(&p, &r);
        }
        // A SIGBUS sent with kill (si_code <= 0) goes to the handler before ours, and a forged
        // one claiming an address our routine may fault on is not taken for ours.
        "sent" => {
            install_own(own_exit);
            let (_c, r) = shrunk_region("c-sent");
            ours_recovered(&r);
            let addr = r.as_ptr().as_ptr() as usize + 2 * PAGE;
            let pc = call_installed_as_if_in_routine(libc::BUS_ADRERR, addr);
            assert_eq!(
                pc, nsm_guard_fixup as *const () as usize,
                "a fault there is ours"
            );
            eprintln!("fault recovered");
            if std::env::var("FAULT_GUARD_SENT").as_deref() == Ok("kill") {
                // SAFETY: kill(2) to ourselves. The process-directed signal may be taken by
                // another thread of the test harness: give it time to arrive.
                unsafe { libc::kill(libc::getpid(), libc::SIGBUS) };
                std::thread::sleep(Duration::from_secs(5));
            } else {
                call_installed_as_if_in_routine(libc::SI_USER, addr);
                call_installed_as_if_in_routine(libc::SI_QUEUE, addr);
            }
        }
        other => panic!("unknown scenario {other}"),
    }
    eprintln!("survived");
    std::process::exit(0);
}

fn run_child(scenario: &str) -> (Option<i32>, Option<i32>, String) {
    run_child_env(scenario, &[])
}

fn run_child_env(scenario: &str, env: &[(&str, &str)]) -> (Option<i32>, Option<i32>, String) {
    use std::io::Read;
    use std::os::unix::process::ExitStatusExt;
    let mut child = common::self_command()
        .args([
            "--exact",
            "child_scenario",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("FAULT_GUARD_CHILD", scenario)
        .envs(env.iter().copied())
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
    common::remove_left_by(child.id());
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

#[test]
fn a_one_shot_handler_before_or_after_ours_runs_once_then_the_default_action_kills() {
    for scenario in ["oneshot-before", "oneshot-after"] {
        let (code, signal, err) = run_child(scenario);
        assert!(err.contains("ours recovered"), "{scenario}: {err}");
        assert_eq!(
            err.matches("one-shot handler ran").count(),
            1,
            "{scenario}: {err}"
        );
        assert_eq!(
            err.matches("mask as delivered").count(),
            1,
            "{scenario}: {err}"
        );
        assert_eq!(
            (code, signal),
            (None, Some(libc::SIGBUS)),
            "{scenario}: {err}"
        );
    }
}

#[test]
fn a_re_raising_or_copy_chaining_handler_after_ours_runs_once_then_the_default_action_kills() {
    for (scenario, line) in [
        ("reraise-after", "re-raising handler ran"),
        ("copychain-after", "copy-chaining handler ran"),
    ] {
        let (code, signal, err) = run_child(scenario);
        assert!(err.contains("ours recovered"), "{scenario}: {err}");
        assert_eq!(err.matches(line).count(), 1, "{scenario}: {err}");
        assert_eq!(
            (code, signal),
            (None, Some(libc::SIGBUS)),
            "{scenario}: {err}"
        );
    }
}

#[test]
fn a_handler_leaving_by_siglongjmp_survives_every_fault_before_or_after_ours() {
    if !have_cc("fault_guard siglongjmp prober") {
        return;
    }
    for scenario in ["longjmp-before", "longjmp-after"] {
        let (code, signal, err) = run_child(scenario);
        assert_eq!((code, signal), (Some(0), None), "{scenario}: {err}");
        assert_eq!(err.matches("faulted=1").count(), 4, "{scenario}: {err}");
        assert_eq!(
            err.matches("ours recovered").count(),
            4,
            "{scenario}: {err}"
        );
        assert!(err.contains("survived"), "{scenario}: {err}");
    }
}

#[test]
fn a_sent_sigbus_is_never_ours_and_goes_to_the_handler_before_ours() {
    for how in ["forged", "kill"] {
        let (code, signal, err) = run_child_env("sent", &[("FAULT_GUARD_SENT", how)]);
        assert!(err.contains("fault recovered"), "{how}: {err}");
        assert_eq!((code, signal), (Some(42), None), "{how}: {err}");
        assert_eq!(
            err.matches("own handler: SIGBUS").count(),
            1,
            "{how}: {err}"
        );
    }
}

/// A peer shrinks the segment and at once regrows it, over and over, while threads copy and
/// run atomics on it: every failure is `Shrunk` (never an OS error such as `ENOMEM`).
#[test]
fn a_shrink_then_regrow_is_shrunk_or_success_never_an_os_error() {
    let name = unique("regrow");
    let size = 3 * PAGE;
    let seg = Segment::create(&name, size as u64, CreateOptions::default()).unwrap();
    let _c = Cleanup(name.clone());
    // SAFETY: only the guarded operations below touch the mapping while it shrinks.
    let region = Arc::new(unsafe { Region::open(seg, None) }.unwrap());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let peer = {
        let stop = Arc::clone(&stop);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(format!("/dev/shm/{name}"))
            .unwrap();
        std::thread::spawn(move || {
            let mut rounds = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && rounds < 200_000 {
                for s in [0, PAGE + 100, size, PAGE, 17, size] {
                    file.set_len(s as u64).unwrap();
                }
                rounds += 1;
            }
        })
    };
    let workers: Vec<_> = (0..3)
        .map(|_| {
            let r = Arc::clone(&region);
            std::thread::spawn(move || {
                let (mut ok, mut shrunk) = (0u32, 0u32);
                let mut buf = vec![0u8; size];
                for _ in 0..20_000 {
                    let results = [
                        r.read(0, &mut buf).map(|_| ()),
                        r.read(PAGE + 1000, &mut buf[..64]).map(|_| ()),
                        r.write(PAGE, &buf[..2 * PAGE]),
                        r.add(2 * PAGE + 8, 0).map(|_| ()),
                        r.load(PAGE + 4).map(|_| ()),
                        r.compare_exchange(size - 4, 0, 0).map(|_| ()),
                        r.wait(2 * PAGE, 12345, Some(Duration::ZERO)).map(|_| ()),
                        r.notify(2 * PAGE, 1).map(|_| ()),
                    ];
                    for res in results {
                        match res {
                            Ok(()) => ok += 1,
                            Err(RegionError::Shrunk { .. }) => shrunk += 1,
                            Err(e) => panic!("a shrink-and-regrow gave {e:?}"),
                        }
                    }
                }
                (ok, shrunk)
            })
        })
        .collect();
    let counts: Vec<_> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    peer.join().unwrap();
    eprintln!("ok/shrunk per thread: {counts:?}");
    assert!(
        counts.iter().any(|&(_, s)| s > 0),
        "the peer never shrank it in time"
    );
}
