//! Tests of the core without Node. Each test uses its own segment name (pid + test name), and
//! unlinks it, so they can run in parallel.

use super::*;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn unique(tag: &str) -> String {
    format!("/shm-core-test-{}-{}", std::process::id(), tag)
}

struct Unlink(String);
impl Drop for Unlink {
    fn drop(&mut self) {
        let _ = Segment::unlink(&self.0);
    }
}

// The test segments have unique names and are only truncated by the shrink test, which never
// touches the bytes past the new end: the mapping contract holds for all of them.
fn map(seg: &Segment, len: Option<u64>) -> Result<Mapping, Error> {
    // SAFETY: see above.
    unsafe { seg.map(len) }
}

#[cfg(unix)] // its one user is a Unix test
fn map_cow(seg: &Segment, len: Option<u64>) -> Result<Mapping, Error> {
    // SAFETY: see above.
    unsafe { seg.map_copy_on_write(len) }
}

fn open_region(seg: Segment, len: Option<u64>) -> Result<Region, Error> {
    // SAFETY: see above.
    unsafe { Region::open(seg, len) }
}

fn region(tag: &str, len: u64) -> (Unlink, Arc<Region>) {
    let name = unique(tag);
    let seg = Segment::create(&name, len, CreateOptions::default()).unwrap();
    (Unlink(name), Arc::new(open_region(seg, None).unwrap()))
}

// POSIX naming/unlink rules (optional leading '/', no '/', '.', '..'; `shm_open`; unlink
// removes the name): Windows names and unlinks differently (windows.rs).
#[cfg(unix)]
#[test]
fn create_open_size_map_roundtrip() {
    let name = unique("roundtrip");
    let _u = Unlink(name.clone());
    let created = Segment::create(&name, 8192, CreateOptions::default()).unwrap();
    assert_eq!(created.size().unwrap(), 8192);
    let w = map(&created, None).unwrap();
    assert_eq!(w.len(), 8192);
    let mut zero = [1u8; 16];
    w.read(8000, &mut zero);
    assert_eq!(zero, [0u8; 16], "new segments are zero-filled");
    w.write(100, b"hello");

    // Another handle (as another process would have) sees the bytes; leading '/' optional.
    let opened = Segment::open(name.trim_start_matches('/'), Access::ReadWrite).unwrap();
    let r = map(&opened, Some(200)).unwrap();
    assert_eq!(r.len(), 200);
    let mut buf = [0u8; 5];
    r.read(100, &mut buf);
    assert_eq!(&buf, b"hello");
}

// POSIX naming/unlink rules (optional leading '/', no '/', '.', '..'; `shm_open`; unlink
// removes the name): Windows names and unlinks differently (windows.rs).
#[cfg(unix)]
#[test]
fn open_missing_is_enoent() {
    let err = Segment::open(&unique("missing"), Access::ReadWrite).unwrap_err();
    assert_eq!(err.code(), Some("ENOENT"));
    assert!(matches!(
        err,
        Error::Os {
            syscall: "shm_open",
            ..
        }
    ));
}

#[test]
fn exclusive_create_twice_is_eexist_and_nonexclusive_opens() {
    let name = unique("excl");
    let _u = Unlink(name.clone());
    let a = Segment::create(&name, 4096, CreateOptions::default()).unwrap();
    map(&a, None).unwrap().write(0, &[7]);
    let err = Segment::create(&name, 4096, CreateOptions::default()).unwrap_err();
    assert_eq!(err.code(), Some("EEXIST"));
    assert!(a.created());
    let opts = CreateOptions {
        exclusive: false,
        ..Default::default()
    };
    let b = Segment::create(&name, 1000, opts).unwrap();
    assert!(!b.created(), "opened, not created");
    assert_eq!(
        b.size().unwrap(),
        4096,
        "an existing segment is never resized"
    );
    let mut x = [0u8; 1];
    map(&b, None).unwrap().read(0, &mut x);
    assert_eq!(x, [7]);
    let err = Segment::create(&name, 8192, opts).unwrap_err();
    assert!(matches!(
        err,
        Error::ExistingTooSmall {
            requested: 8192,
            size: 4096
        }
    ));
}

#[test]
fn map_never_past_the_end_nor_empty() {
    let name = unique("toolarge");
    let _u = Unlink(name.clone());
    let s = Segment::create(&name, 4096, CreateOptions::default()).unwrap();
    assert!(matches!(
        map(&s, Some(4097)),
        Err(Error::TooLarge {
            requested: 4097,
            size: 4096
        })
    ));
    assert!(matches!(map(&s, Some(0)), Err(Error::Empty)));
    assert!(matches!(
        Segment::create(&unique("zero"), 0, CreateOptions::default()),
        Err(Error::Empty)
    ));
}

// POSIX naming/unlink rules (optional leading '/', no '/', '.', '..'; `shm_open`; unlink
// removes the name): Windows names and unlinks differently (windows.rs).
#[cfg(unix)]
#[test]
fn read_only_mapping_is_copy_on_write() {
    let name = unique("cow");
    let _u = Unlink(name.clone());
    let rw = map(
        &Segment::create(&name, 4096 * 2, CreateOptions::default()).unwrap(),
        None,
    )
    .unwrap();
    rw.write(0, b"abc");
    let seg = Segment::open(&name, Access::ReadOnly).unwrap();
    assert!(
        !map(&seg, None).unwrap().local_writes_allowed(),
        "the shared read-only mapping is PROT_READ"
    );
    let ro = map_cow(&seg, None).unwrap();
    assert_eq!(ro.access(), Access::ReadOnly);
    assert!(
        ro.local_writes_allowed(),
        "Linux gives a private copy-on-write view"
    );
    // Peer writes are visible through the read-only view (page not yet written locally).
    rw.write(4096, b"xyz");
    let mut b = [0u8; 3];
    ro.read(4096, &mut b);
    assert_eq!(&b, b"xyz");
    // A local write through the pointer neither faults nor reaches the segment.
    // SAFETY: local writes are allowed (checked above) and offset 1 is inside the mapping.
    unsafe { *ro.as_ptr().as_ptr().add(1) = b'Z' };
    let mut seen = [0u8; 3];
    rw.read(0, &mut seen);
    assert_eq!(&seen, b"abc");
}

#[test]
#[should_panic(expected = "read-only")]
fn mapping_write_on_read_only_panics() {
    let name = unique("ropanic");
    let _u = Unlink(name.clone());
    let _rw = Segment::create(&name, 4096, CreateOptions::default()).unwrap();
    let ro = map(&Segment::open(&name, Access::ReadOnly).unwrap(), None).unwrap();
    ro.write(0, b"x");
}

// POSIX naming/unlink rules (optional leading '/', no '/', '.', '..'; `shm_open`; unlink
// removes the name): Windows names and unlinks differently (windows.rs).
#[cfg(unix)]
#[test]
fn names_are_checked_before_any_syscall() {
    assert_eq!(validate_name(""), Err(NameError::Empty));
    assert_eq!(validate_name("/"), Err(NameError::Empty));
    assert_eq!(validate_name("a/b"), Err(NameError::Slash));
    assert_eq!(validate_name("//a"), Err(NameError::Slash));
    assert_eq!(validate_name("a\0b"), Err(NameError::Nul));
    assert!(matches!(
        validate_name(&"x".repeat(300)),
        Err(NameError::TooLong { .. })
    ));
    assert_eq!(validate_name("/ok"), Ok(()));
    #[cfg(target_os = "linux")]
    {
        // glibc strips the leading '/' and then allows a whole file name (255 bytes).
        assert_eq!(validate_name(&"y".repeat(255)), Ok(()));
        assert_eq!(validate_name(&format!("/{}", "y".repeat(255))), Ok(()));
        assert!(matches!(
            validate_name(&"y".repeat(256)),
            Err(NameError::TooLong {
                len: 256,
                max: 255,
                ..
            })
        ));
        // `unique("")` starts with '/', which does not count.
        let longest = unique("") + &"z".repeat(255 - (unique("").len() - 1));
        assert_eq!(longest.len(), 256);
        let _u = Unlink(longest.clone());
        Segment::create(&longest, 10, CreateOptions::default())
            .expect("the longest valid name works");
        Segment::open(&longest, Access::ReadOnly).expect("and opens");
        assert!(Segment::unlink(&longest).unwrap(), "and unlinks");
    }
    for dots in [".", "..", "/.", "/.."] {
        assert_eq!(validate_name(dots), Err(NameError::Dots), "{dots}");
    }
    assert_eq!(validate_name("..."), Ok(()));
    assert_eq!(validate_name("ünïcødé"), Ok(()));
}

// POSIX naming/unlink rules (optional leading '/', no '/', '.', '..'; `shm_open`; unlink
// removes the name): Windows names and unlinks differently (windows.rs).
#[cfg(unix)]
#[test]
fn unlink_reports_existence_and_keeps_mappings() {
    let name = unique("unlink");
    let s = Segment::create(&name, 4096, CreateOptions::default()).unwrap();
    let m = map(&s, None).unwrap();
    m.write(0, b"kept");
    assert!(Segment::unlink(&name).unwrap());
    assert!(!Segment::unlink(&name).unwrap());
    assert_eq!(
        Segment::open(&name, Access::ReadWrite).unwrap_err().code(),
        Some("ENOENT")
    );
    let mut b = [0u8; 4];
    m.read(0, &mut b);
    assert_eq!(&b, b"kept");
}

#[test]
fn region_atomics_and_bounds() {
    let (_u, r) = region("atomics", 4096);
    assert_eq!(r.store(8, 5).unwrap(), 5);
    assert_eq!(r.add(8, 3).unwrap(), 5);
    assert_eq!(r.load(8).unwrap(), 8);
    assert_eq!(r.compare_exchange(8, 8, 1).unwrap(), 8);
    assert_eq!(r.compare_exchange(8, 8, 2).unwrap(), 1);
    assert_eq!(r.add(8, i32::MAX).unwrap(), 1, "wraps like Atomics.add");
    assert_eq!(r.load(8).unwrap(), i32::MIN);
    assert!(matches!(r.load(2), Err(RegionError::Misaligned)));
    assert!(matches!(r.load(4096), Err(RegionError::OutOfRange)));
    assert!(r.load(4092).is_ok());
}

#[test]
fn region_copies_check_ranges_and_read_only() {
    let (u, r) = region("copies", 4096);
    r.write(4090, &[1, 2, 3, 4, 5, 6]).unwrap();
    assert!(matches!(
        r.write(4091, &[0; 6]),
        Err(RegionError::OutOfRange)
    ));
    let mut b = [0u8; 6];
    r.read(4090, &mut b).unwrap();
    assert_eq!(b, [1, 2, 3, 4, 5, 6]);
    let seg = Segment::open(&u.0, Access::ReadOnly).unwrap();
    let ro = open_region(seg, None).unwrap();
    assert!(matches!(ro.write(0, &[1]), Err(RegionError::ReadOnly)));
    assert!(matches!(ro.store(0, 1), Err(RegionError::ReadOnly)));
    assert!(matches!(ro.add(0, 1), Err(RegionError::ReadOnly)));
    assert!(matches!(
        ro.compare_exchange(0, 0, 1),
        Err(RegionError::ReadOnly)
    ));
    assert_eq!(ro.load(4088).unwrap(), i32::from_ne_bytes([0, 0, 1, 2]));
}

#[cfg(unix)] // Windows mappings cannot shrink
#[test]
fn region_copy_after_peer_shrinks_is_an_error_not_sigbus() {
    let (u, r) = region("shrink", 3 * 4096);
    let peer = Segment::open(&u.0, Access::ReadWrite).unwrap();
    rustix::fs::ftruncate(peer.inner.fd_for_tests(), 4096).unwrap();
    let mut b = [0u8; 8];
    assert!(matches!(
        r.read(2 * 4096, &mut b),
        Err(RegionError::Shrunk { size: 4096, .. })
    ));
    assert!(matches!(r.write(4096, &b), Err(RegionError::Shrunk { .. })));
    r.read(0, &mut b).unwrap();
}

#[cfg(target_os = "linux")] // the fault guard (fault.rs); run under QEMU for aarch64 too
#[test]
fn region_atomics_and_wait_after_peer_shrinks_are_errors_not_sigbus() {
    let (u, r) = region("shrink-atomics", 3 * 4096);
    r.write(4088, &[1, 0, 0, 0, 2, 0, 0, 0]).unwrap();
    let peer = Segment::open(&u.0, Access::ReadWrite).unwrap();
    rustix::fs::ftruncate(peer.inner.fd_for_tests(), 4096).unwrap();
    let gone = |res: Result<i32, RegionError>| {
        matches!(
            res,
            Err(RegionError::Shrunk {
                size: 4096,
                needed: 8196
            })
        )
    };
    assert!(gone(r.load(8192)));
    assert!(gone(r.store(8192, 1)));
    assert!(gone(r.add(8192, 1)));
    assert!(gone(r.compare_exchange(8192, 0, 1)));
    assert!(matches!(
        r.wait(8192, 0, None),
        Err(RegionError::Shrunk { .. })
    ));
    assert!(matches!(r.notify(8192, 1), Err(RegionError::Shrunk { .. })));
    let mut b = [0xeeu8; 16];
    assert!(matches!(
        r.read(4088, &mut b),
        Err(RegionError::Shrunk {
            size: 4096,
            needed: 4104
        })
    ));
    assert_eq!(b, [0xee; 16], "nothing copied");
    // The guarded routines' results on the words that are left.
    assert_eq!(r.load(4092).unwrap(), 2);
    assert_eq!(r.add(4092, -3).unwrap(), 2);
    assert_eq!(r.load(4092).unwrap(), -1);
    assert_eq!(r.compare_exchange(4092, 5, 6).unwrap(), -1, "no swap");
    assert_eq!(r.compare_exchange(4092, -1, 6).unwrap(), -1, "swap");
    assert_eq!(r.store(4088, 9).unwrap(), 9);
    r.read(4088, &mut b[..8]).unwrap();
    assert_eq!(b[..8], [9, 0, 0, 0, 6, 0, 0, 0]);
    assert_eq!(r.wait(4092, 7, None).unwrap(), WaitOutcome::NotEqual);
}

#[test]
fn wait_times_out_not_equal_and_is_woken() {
    let (_u, r) = region("wait", 4096);
    assert_eq!(
        r.wait(0, 1, Some(Duration::ZERO)).unwrap(),
        WaitOutcome::NotEqual
    );
    let t = Instant::now();
    assert_eq!(
        r.wait(0, 0, Some(Duration::from_millis(30))).unwrap(),
        WaitOutcome::TimedOut
    );
    assert!(t.elapsed() >= Duration::from_millis(30));
    assert_eq!(r.notify(0, 1).unwrap(), 0, "nobody waits yet");

    let r2 = r.clone();
    let waiter = std::thread::spawn(move || r2.wait(0, 0, None));
    // Keep notifying until the waiter has been woken (it may not be asleep yet).
    let mut woken = 0;
    while woken == 0 {
        std::thread::sleep(Duration::from_millis(1));
        woken = r.notify(0, u32::MAX).unwrap();
    }
    assert_eq!(woken, 1);
    assert_eq!(waiter.join().unwrap().unwrap(), WaitOutcome::Ok);
}

#[test]
fn close_wakes_a_blocked_waiter_and_unmaps_after_it_left() {
    let (_u, r) = region("closewake", 4096);
    let r2 = r.clone();
    let waiter = std::thread::spawn(move || r2.wait(4, 0, None));
    std::thread::sleep(Duration::from_millis(20));
    r.close(true);
    assert!(matches!(waiter.join().unwrap(), Err(RegionError::Closed)));
    assert!(matches!(r.load(0), Err(RegionError::Closed)));
    let mut b = [0u8; 1];
    assert!(matches!(r.read(0, &mut b), Err(RegionError::Closed)));
    r.close(true); // second close does nothing
}

#[cfg(unix)]
#[test]
fn error_codes_are_node_style() {
    let e = std::io::Error::from_raw_os_error(rustix::io::Errno::ACCESS.raw_os_error());
    assert_eq!(error_code(&e), "EACCES");
    assert_eq!(error_code(&std::io::Error::other("x")), "UNKNOWN");
}

#[test]
fn read_only_region_native_ops_see_the_segment_not_local_writes() {
    let (u, rw) = region("rojs", 4096);
    rw.store(0, 1).unwrap();
    let ro = open_region(Segment::open(&u.0, Access::ReadOnly).unwrap(), None).unwrap();
    let js = ro.js_ptr().expect("copy-on-write view");
    assert_ne!(js, ro.as_ptr());
    // SAFETY: js_ptr is writable for len() bytes while `ro` lives; offset 0 is in range.
    unsafe { *js.as_ptr() = 200 };
    assert_eq!(ro.load(0).unwrap(), 1, "atomics read the shared mapping");
    let mut b = [0u8; 1];
    ro.read(0, &mut b).unwrap();
    assert_eq!(b, [1]);
    rw.store(0, 7).unwrap();
    assert_eq!(ro.load(0).unwrap(), 7);
    assert_eq!(
        rw.js_ptr(),
        Some(rw.as_ptr()),
        "read-write regions hand out the shared mapping"
    );
}

/// Plants `entry` under a fresh name in /dev/shm and returns the name (without '/').
#[cfg(target_os = "linux")]
fn planted(tag: &str, plant: impl FnOnce(&std::path::Path)) -> (Unlink, String) {
    let name = unique(tag);
    let path = std::path::PathBuf::from(format!("/dev/shm{name}"));
    plant(&path);
    (Unlink(name.clone()), name)
}

#[cfg(target_os = "linux")]
#[test]
fn hostile_entries_are_never_followed_opened_for_io_or_changed() {
    let dir = std::env::temp_dir().join(format!("shm-core-victim-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let victim = dir.join("secret");
    std::fs::write(&victim, b"victim bytes").unwrap();
    let nonexclusive = CreateOptions {
        exclusive: false,
        ..Default::default()
    };

    // A symlink to a file of ours: ELOOP on every open path; create(exclusive) says EEXIST.
    let (_u, name) = planted("symlink", |p| {
        std::os::unix::fs::symlink(&victim, p).unwrap()
    });
    for access in [Access::ReadOnly, Access::ReadWrite] {
        let err = Segment::open(&name, access).unwrap_err();
        assert_eq!(err.code(), Some("ELOOP"), "{access:?}: {err}");
    }
    let err = Segment::create(&name, 4096, nonexclusive).unwrap_err();
    assert_eq!(err.code(), Some("ELOOP"), "{err}");
    let err = Segment::create(&name, 4096, CreateOptions::default()).unwrap_err();
    assert_eq!(err.code(), Some("EEXIST"), "{err}");
    assert!(
        Segment::unlink(&name).unwrap(),
        "unlink removes the link itself"
    );
    assert_eq!(
        std::fs::read(&victim).unwrap(),
        b"victim bytes",
        "target untouched"
    );

    // A FIFO: opening it must neither block (O_RDONLY would wait for a writer) nor succeed.
    let (_u, name) = planted("fifo", |p| {
        let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            c.as_c_str(),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_bits_truncate(0o600),
            0,
        )
        .unwrap();
    });
    for access in [Access::ReadOnly, Access::ReadWrite] {
        let err = Segment::open(&name, access).unwrap_err();
        assert_eq!(err.code(), Some("EINVAL"), "{access:?}: {err}");
    }
    assert_eq!(
        Segment::create(&name, 4096, nonexclusive)
            .unwrap_err()
            .code(),
        Some("EINVAL")
    );

    // A directory.
    let (_u, name) = planted("dir", |p| std::fs::create_dir(p).unwrap());
    assert_eq!(
        Segment::open(&name, Access::ReadOnly).unwrap_err().code(),
        Some("EISDIR")
    );
    assert_eq!(
        Segment::open(&name, Access::ReadWrite).unwrap_err().code(),
        Some("EISDIR")
    );
    std::fs::remove_dir(format!("/dev/shm{name}")).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[cfg(target_os = "linux")]
#[test]
fn descriptors_are_close_on_exec() {
    let (_u, name) = planted("cloexec", |_| {});
    let created = Segment::create(&name, 4096, CreateOptions::default()).unwrap();
    let opened = Segment::open(&name, Access::ReadOnly).unwrap();
    for seg in [&created, &opened] {
        let flags = rustix::io::fcntl_getfd(seg.inner.fd_for_tests()).unwrap();
        assert!(flags.contains(rustix::io::FdFlags::CLOEXEC));
    }
}

/// Creates `name` with 0 bytes the way a C or Python creator does before its `ftruncate`.
#[cfg(target_os = "linux")]
fn unsized_segment(name: &str) -> std::fs::File {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(format!("/dev/shm{name}"))
        .unwrap()
}

#[cfg(target_os = "linux")]
#[test]
fn nonexclusive_create_waits_for_a_creator_to_size_and_never_resizes() {
    let nonexclusive = CreateOptions {
        exclusive: false,
        ..Default::default()
    };
    // A creator that sizes its segment 30 ms after making it: we take its size.
    let (_u, name) = planted("race", |_| {});
    let file = unsized_segment(&name);
    let sizer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(30));
        file.set_len(8192).unwrap();
    });
    let seg = Segment::create(&name, 4096, nonexclusive).unwrap();
    sizer.join().unwrap();
    assert!(!seg.created());
    assert_eq!(seg.size().unwrap(), 8192, "the creator's size, not ours");

    // A creator that never sizes it: ERR_SHM_EMPTY-style error, and the segment stays 0 bytes.
    let (_u2, name) = planted("never", |_| {});
    let _file = unsized_segment(&name);
    let start = Instant::now();
    let err = Segment::create(&name, 4096, nonexclusive).unwrap_err();
    assert!(matches!(err, Error::Empty), "{err}");
    assert!(start.elapsed() >= Duration::from_millis(100));
    assert_eq!(
        std::fs::metadata(format!("/dev/shm{name}")).unwrap().len(),
        0
    );
}

#[test]
fn wait_interruptible_gives_up_when_told_and_wake_waiters_is_prompt() {
    let (_u, r) = region("interrupt", 4096);
    // Interrupted after its third slice.
    let mut asked = 0;
    let start = Instant::now();
    let out = r.wait_interruptible(0, 0, None, Some(WAIT_SLICE), &mut || {
        asked += 1;
        asked == 3
    });
    assert!(matches!(out, Err(RegionError::Interrupted)), "{out:?}");
    assert_eq!(asked, 3);
    assert!(start.elapsed() >= WAIT_SLICE * 3);
    // The timeout still counts across slices.
    let start = Instant::now();
    let out = r.wait_interruptible(
        0,
        0,
        Some(Duration::from_millis(50)),
        Some(WAIT_SLICE),
        &mut || false,
    );
    assert_eq!(out.unwrap(), WaitOutcome::TimedOut);
    assert!(start.elapsed() >= Duration::from_millis(50));

    // Unsliced, a flag plus wake_waiters is the only way out.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (r2, stop2) = (Arc::clone(&r), Arc::clone(&stop));
    let waiter = std::thread::spawn(move || {
        r2.wait_interruptible(4, 0, None, None, &mut || {
            stop2.load(std::sync::atomic::Ordering::SeqCst)
        })
    });
    std::thread::sleep(Duration::from_millis(50));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    // The waiter may still be spinning, not in the kernel yet, where one wake-up would miss it:
    // wake until it has left, as a canceller must (see `wait_interruptible`).
    while !waiter.is_finished() {
        r.wake_waiters();
        std::thread::sleep(Duration::from_micros(50));
    }
    assert!(matches!(
        waiter.join().unwrap(),
        Err(RegionError::Interrupted)
    ));
}

/// The guarded copy routines (fault.rs: 64-, 16- and 1-byte steps) copy exactly the range, for
/// every length up to 200 and every source/destination alignment in a 16-byte window.
#[test]
fn region_copies_are_exact_for_every_length_and_alignment() {
    let (_u, r) = region("copy-exact", 4096);
    let pattern: Vec<u8> = (0..4096u32).map(|i| (i * 7 + 3) as u8).collect();
    r.write(0, &pattern).unwrap();
    for len in 0..200 {
        for src_off in [0, 1, 7, 8, 15] {
            for dst_off in [0, 3, 16] {
                let mut dst = vec![0xeeu8; len + 40];
                r.read(1000 + src_off, &mut dst[dst_off..dst_off + len])
                    .unwrap();
                assert!(dst[..dst_off].iter().all(|&b| b == 0xee));
                assert_eq!(
                    dst[dst_off..dst_off + len],
                    pattern[1000 + src_off..1000 + src_off + len]
                );
                assert!(dst[dst_off + len..].iter().all(|&b| b == 0xee), "len {len}");
                let src: Vec<u8> = (0..len).map(|i| !(i as u8)).collect();
                let at = 2048 + src_off;
                r.write(at, &src).unwrap();
                let mut back = vec![0u8; len + 2];
                r.read(at - 1, &mut back).unwrap();
                assert_eq!(back[0], pattern[at - 1]);
                assert_eq!(back[1..=len], src[..]);
                assert_eq!(back[len + 1], pattern[at + len]);
                r.write(at - 1, &pattern[at - 1..at + len + 1]).unwrap();
            }
        }
    }
}
