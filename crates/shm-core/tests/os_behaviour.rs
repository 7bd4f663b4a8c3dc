//! Integration tests of what shm-core does to the OS, written to kill cargo-mutants survivors
//! (docs/mutants-shm-core.md): the open flags (O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK) seen in
//! /proc/self/fdinfo and against planted symlinks and FIFOs, unlink, the non-exclusive create
//! size rule at its boundary, unmapping on drop, notify counting a sleeping waiter, and a wait
//! that times out. Linux only (/dev/shm, /proc). Every blocking call runs in a thread with a
//! deadline, so a mutant that hangs fails the test instead of hanging the run.
#![cfg(target_os = "linux")]

use shm_core::{Access, CreateOptions, Error, Region, Segment, WaitOutcome};
use std::path::Path;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

mod common;
use common::{unique, Cleanup};
use std::sync::atomic::Ordering;

/// Runs `f` on a thread; `None` if it has not finished within `limit` (the thread is left).
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit).ok()
}

/// The `flags:` (octal) of every fd of this process open on /dev/shm/<name>.
fn fd_flags(name: &str) -> Vec<u32> {
    let target = format!("/dev/shm/{name}");
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        let Ok(link) = std::fs::read_link(entry.path()) else {
            continue;
        };
        if link == Path::new(&target) {
            let info = std::fs::read_to_string(format!(
                "/proc/self/fdinfo/{}",
                entry.file_name().to_string_lossy()
            ))
            .unwrap();
            let flags = info
                .lines()
                .find_map(|l| l.strip_prefix("flags:"))
                .map(|v| u32::from_str_radix(v.trim(), 8).unwrap())
                .unwrap();
            out.push(flags);
        }
    }
    out
}

fn maps_of(name: &str) -> usize {
    let target = format!("/dev/shm/{name}");
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .filter(|l| l.ends_with(&target) || l.ends_with(&format!("{target} (deleted)")))
        .count()
}

const O_NONBLOCK: u32 = 0o4000;
const O_NOFOLLOW: u32 = 0o400000;
const O_CLOEXEC: u32 = 0o2000000;

#[test]
fn every_segment_fd_is_opened_nofollow_cloexec_nonblock() {
    let name = unique("flags");
    let _c = Cleanup(name.clone());
    let created = Segment::create(&name, 4096, CreateOptions::default()).unwrap();
    let opened_rw = Segment::open(&name, Access::ReadWrite).unwrap();
    let opened_ro = Segment::open(&name, Access::ReadOnly).unwrap();
    let again = Segment::create(
        &name,
        4096,
        CreateOptions {
            exclusive: false,
            ..CreateOptions::default()
        },
    )
    .unwrap();
    let flags = fd_flags(&name);
    assert_eq!(flags.len(), 4, "one fd per handle: {flags:?}");
    for f in flags {
        assert_eq!(f & O_CLOEXEC, O_CLOEXEC, "O_CLOEXEC missing: {f:o}");
        assert_eq!(f & O_NOFOLLOW, O_NOFOLLOW, "O_NOFOLLOW missing: {f:o}");
        assert_eq!(f & O_NONBLOCK, O_NONBLOCK, "O_NONBLOCK missing: {f:o}");
    }
    drop((created, opened_rw, opened_ro, again));
    assert!(
        fd_flags(&name).is_empty(),
        "dropping a Segment closes its fd"
    );
}

#[test]
fn a_symlink_planted_under_the_name_is_never_followed() {
    let name = unique("link");
    let _c = Cleanup(name.clone());
    let target = std::env::temp_dir().join(format!("{name}.target"));
    std::fs::write(&target, b"precious").unwrap();
    std::os::unix::fs::symlink(&target, format!("/dev/shm/{name}")).unwrap();
    for access in [Access::ReadWrite, Access::ReadOnly] {
        let err = Segment::open(&name, access).unwrap_err();
        assert_eq!(err.code(), Some("ELOOP"), "{err}");
    }
    let err = Segment::create(
        &name,
        4096,
        CreateOptions {
            exclusive: false,
            ..CreateOptions::default()
        },
    )
    .unwrap_err();
    assert_eq!(err.code(), Some("ELOOP"), "{err}");
    assert_eq!(std::fs::read(&target).unwrap(), b"precious");
    // unlink removes the link itself, never its target.
    assert!(Segment::unlink(&name).unwrap());
    assert!(target.exists());
    std::fs::remove_file(&target).unwrap();
}

#[test]
fn a_fifo_planted_under_the_name_fails_at_once() {
    let name = unique("fifo");
    let _c = Cleanup(name.clone());
    let status = std::process::Command::new("mkfifo")
        .arg(format!("/dev/shm/{name}"))
        .status()
        .expect("mkfifo (coreutils)");
    assert!(status.success());
    let n = name.clone();
    let r = within(Duration::from_secs(10), move || {
        Segment::open(&n, Access::ReadOnly)
            .map(|_| ())
            .map_err(|e| e.code())
    })
    .expect("opening a FIFO blocked (O_NONBLOCK missing)");
    assert_eq!(r, Err(Some("EINVAL")));
}

#[test]
fn unlink_removes_the_name_and_reports_whether_there_was_one() {
    let name = unique("unlink");
    let _c = Cleanup(name.clone());
    let seg = Segment::create(&name, 4096, CreateOptions::default()).unwrap();
    assert!(Path::new(&format!("/dev/shm/{name}")).exists());
    assert!(Segment::unlink(&name).unwrap());
    assert!(!Path::new(&format!("/dev/shm/{name}")).exists());
    assert_eq!(
        Segment::open(&name, Access::ReadWrite).unwrap_err().code(),
        Some("ENOENT")
    );
    assert!(!Segment::unlink(&name).unwrap());
    // The handle still works after the name is gone.
    assert_eq!(seg.size().unwrap(), 4096);
}

#[test]
fn non_exclusive_create_accepts_exactly_the_existing_size_and_never_resizes() {
    let name = unique("exact");
    let _c = Cleanup(name.clone());
    let first = Segment::create(&name, 8192, CreateOptions::default()).unwrap();
    let opts = CreateOptions {
        exclusive: false,
        ..CreateOptions::default()
    };
    let same = Segment::create(&name, 8192, opts).expect("len == existing size is enough");
    assert!(!same.created());
    let smaller = Segment::create(&name, 1, opts).unwrap();
    assert!(!smaller.created());
    match Segment::create(&name, 8193, opts) {
        Err(Error::ExistingTooSmall {
            requested: 8193,
            size: 8192,
        }) => {}
        other => panic!("8193 of 8192: {other:?}"),
    }
    assert_eq!(first.size().unwrap(), 8192, "never resized");
    assert_eq!(
        std::fs::metadata(format!("/dev/shm/{name}")).unwrap().len(),
        8192
    );
}

#[test]
fn dropping_a_mapping_unmaps_it() {
    let name = unique("unmap");
    let _c = Cleanup(name.clone());
    let seg = Segment::create(&name, 4096, CreateOptions::default()).unwrap();
    assert_eq!(maps_of(&name), 0);
    // SAFETY: this test owns the segment and never shrinks it.
    let a = unsafe { seg.map(None) }.unwrap();
    // SAFETY: as above.
    let b = unsafe { seg.map_copy_on_write(None) }.unwrap();
    assert_eq!(maps_of(&name), 2);
    drop(a);
    assert_eq!(maps_of(&name), 1);
    drop(b);
    assert_eq!(maps_of(&name), 0);
}

fn region(name: &str) -> Arc<Region> {
    let seg = Segment::create(name, 4096, CreateOptions::default()).unwrap();
    // SAFETY: this test owns the segment and never shrinks it.
    Arc::new(unsafe { Region::open(seg, None) }.unwrap())
}

#[test]
fn notify_counts_the_one_waiter_asleep_on_the_word() {
    let name = unique("notify");
    let _c = Cleanup(name.clone());
    let r = region(&name);
    let waiter = Arc::clone(&r);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(waiter.wait(8, 0, Some(Duration::from_secs(30))));
    });
    // The word never changes: only a notify that reaches the waiter's futex ends its wait.
    // Until the waiter is in the kernel a notify finds nobody (0), so keep trying.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut woken = 0;
    while woken == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
        woken = r.notify(8, 1).unwrap();
    }
    assert_eq!(woken, 1, "notify reports the sleeping waiter it woke");
    let outcome = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the waiter returned");
    assert_eq!(outcome.unwrap(), WaitOutcome::Ok);
    assert_eq!(r.notify(8, 1).unwrap(), 0, "nobody left");
    assert_eq!(r.load(8).unwrap(), 0);
}

#[test]
fn a_wait_with_a_timeout_times_out_and_one_without_the_expected_value_returns_at_once() {
    let name = unique("timeout");
    let _c = Cleanup(name.clone());
    let r = region(&name);
    let w = Arc::clone(&r);
    let started = Instant::now();
    let outcome = within(Duration::from_secs(10), move || {
        w.wait(0, 0, Some(Duration::from_millis(150))).unwrap()
    })
    .expect("a 150 ms wait returned within 10 s");
    assert_eq!(outcome, WaitOutcome::TimedOut);
    assert!(started.elapsed() >= Duration::from_millis(150));
    assert_eq!(
        r.wait(0, 1, Some(Duration::from_secs(10))).unwrap(),
        WaitOutcome::NotEqual
    );
}

#[test]
fn non_exclusive_create_retries_when_a_peer_unlinks_the_name_in_between() {
    // Thread A creates and unlinks the name as fast as it can; thread B keeps calling a
    // non-exclusive create. When B's exclusive attempt finds the name (EEXIST) and A unlinks it
    // before B's open, B must retry, never report ENOENT for a create.
    let name = unique("race");
    let _c = Cleanup(name.clone());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (a_name, a_stop) = (name.clone(), Arc::clone(&stop));
    let churn = std::thread::spawn(move || {
        let mut cycles = 0u64;
        while !a_stop.load(Ordering::Relaxed) {
            if let Ok(seg) = Segment::create(&a_name, 4096, CreateOptions::default()) {
                drop(seg);
            }
            let _ = Segment::unlink(&a_name);
            cycles += 1;
        }
        cycles
    });
    let opts = CreateOptions {
        exclusive: false,
        ..CreateOptions::default()
    };
    let start = Instant::now();
    let mut calls = 0u64;
    let mut enoent = 0u64;
    while start.elapsed() < Duration::from_secs(2) {
        match Segment::create(&name, 4096, opts) {
            Ok(_) => {}
            Err(e) if e.code() == Some("ENOENT") => enoent += 1,
            // A's segment still 0 bytes after the 100 ms grace (A descheduled on a loaded
            // machine): the documented answer for an unsized segment, not this race.
            Err(Error::Empty) => {}
            Err(e) => panic!("non-exclusive create failed: {e}"),
        }
        calls += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let cycles = churn.join().unwrap();
    assert!(
        calls > 100 && cycles > 100,
        "{calls} calls, {cycles} churn cycles"
    );
    assert_eq!(enoent, 0, "ENOENT from a create in {calls} calls");
}
