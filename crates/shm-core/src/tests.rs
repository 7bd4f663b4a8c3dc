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

fn region(tag: &str, len: u64) -> (Unlink, Arc<Region>) {
    let name = unique(tag);
    let seg = Segment::create(&name, len, CreateOptions::default()).unwrap();
    (Unlink(name), Arc::new(Region::open(seg, None).unwrap()))
}

#[test]
fn create_open_size_map_roundtrip() {
    let name = unique("roundtrip");
    let _u = Unlink(name.clone());
    let created = Segment::create(&name, 8192, CreateOptions::default()).unwrap();
    assert_eq!(created.size().unwrap(), 8192);
    let w = created.map(None).unwrap();
    assert_eq!(w.len(), 8192);
    let mut zero = [1u8; 16];
    w.read(8000, &mut zero);
    assert_eq!(zero, [0u8; 16], "new segments are zero-filled");
    w.write(100, b"hello");

    // Another handle (as another process would have) sees the bytes; leading '/' optional.
    let opened = Segment::open(name.trim_start_matches('/'), Access::ReadWrite).unwrap();
    let r = opened.map(Some(200)).unwrap();
    assert_eq!(r.len(), 200);
    let mut buf = [0u8; 5];
    r.read(100, &mut buf);
    assert_eq!(&buf, b"hello");
}

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
    a.map(None).unwrap().write(0, &[7]);
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
    b.map(None).unwrap().read(0, &mut x);
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
        s.map(Some(4097)),
        Err(Error::TooLarge {
            requested: 4097,
            size: 4096
        })
    ));
    assert!(matches!(s.map(Some(0)), Err(Error::Empty)));
    assert!(matches!(
        Segment::create(&unique("zero"), 0, CreateOptions::default()),
        Err(Error::Empty)
    ));
}

#[test]
fn read_only_mapping_is_copy_on_write() {
    let name = unique("cow");
    let _u = Unlink(name.clone());
    let rw = Segment::create(&name, 4096 * 2, CreateOptions::default())
        .unwrap()
        .map(None)
        .unwrap();
    rw.write(0, b"abc");
    let seg = Segment::open(&name, Access::ReadOnly).unwrap();
    assert!(
        !seg.map(None).unwrap().local_writes_allowed(),
        "the shared read-only mapping is PROT_READ"
    );
    let ro = seg.map_copy_on_write(None).unwrap();
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
    let ro = Segment::open(&name, Access::ReadOnly)
        .unwrap()
        .map(None)
        .unwrap();
    ro.write(0, b"x");
}

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
        assert_eq!(validate_name(&"y".repeat(254)), Ok(()));
        assert!(matches!(
            validate_name(&"y".repeat(255)),
            Err(NameError::TooLong {
                len: 256,
                max: 255,
                ..
            })
        ));
        let longest = unique("").to_string() + &"z".repeat(254 - unique("").len() + 1);
        let _u = Unlink(longest.clone());
        Segment::create(&longest, 10, CreateOptions::default())
            .expect("the longest valid name works");
    }
    assert_eq!(validate_name("ünïcødé"), Ok(()));
}

#[test]
fn unlink_reports_existence_and_keeps_mappings() {
    let name = unique("unlink");
    let s = Segment::create(&name, 4096, CreateOptions::default()).unwrap();
    let m = s.map(None).unwrap();
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
    let ro = Region::open(seg, None).unwrap();
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
    let ro = Region::open(Segment::open(&u.0, Access::ReadOnly).unwrap(), None).unwrap();
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
