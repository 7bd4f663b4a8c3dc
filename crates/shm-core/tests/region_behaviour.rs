//! Integration tests of [`Region`] written to kill cargo-mutants survivors
//! (docs/mutants-shm-core.md): its error texts, length, `wake_waiters` interrupting exactly the
//! waiter that must stop (also after another waiter of the same region has left), and `close`
//! waking a waiter. Linux only. Blocking calls run on threads with deadlines.
#![cfg(target_os = "linux")]

use shm_core::{CreateOptions, Error, NameError, Region, RegionError, Segment, WaitOutcome};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

mod common;
use common::{unique, Cleanup};

fn region(name: &str, len: u64) -> Arc<Region> {
    let seg = Segment::create(name, len, CreateOptions::default()).unwrap();
    // SAFETY: this test owns the segment (unique name) and never shrinks it.
    Arc::new(unsafe { Region::open(seg, None) }.unwrap())
}

#[test]
fn region_error_texts_are_exact() {
    let cases: [(RegionError, &str); 7] = [
        (RegionError::Closed, "the shared memory is closed"),
        (RegionError::OutOfRange, "the range is outside the mapping"),
        (
            RegionError::Misaligned,
            "the byte offset is not a multiple of 4",
        ),
        (
            RegionError::ReadOnly,
            "the shared memory was opened read-only",
        ),
        (
            RegionError::Shrunk {
                size: 4096,
                needed: 8192,
            },
            "the segment shrank to 4096 bytes while mapped; bytes up to 8192 are gone",
        ),
        (RegionError::Interrupted, "the wait was interrupted"),
        (
            RegionError::Os(Error::Name(NameError::Empty)),
            "the name must not be empty",
        ),
    ];
    for (e, text) in cases {
        assert_eq!(e.to_string(), text);
    }
}

#[test]
fn a_region_is_as_long_as_its_mapping() {
    let name = unique("len");
    let _c = Cleanup(name.clone());
    let r = region(&name, 12288);
    assert_eq!(r.len(), 12288);
    assert!(!r.is_empty());
    let dbg = format!("{r:?}");
    assert!(
        dbg.starts_with("Region { ptr: 0x")
            && dbg.ends_with(", len: 12288, access: ReadWrite, closed: false }"),
        "{dbg}"
    );
    // The last Int32 is in range, the next one is not.
    assert_eq!(r.load(12284).unwrap(), 0);
    assert!(matches!(r.load(12288), Err(RegionError::OutOfRange)));
}

#[test]
fn wake_waiters_interrupts_the_waiter_that_must_stop_even_after_another_waiter_left() {
    let name = unique("wake");
    let _c = Cleanup(name.clone());
    let r = region(&name, 4096);

    // Waiter A on offset 0 (ends by notify), waiter B on offset 8 (ends only when interrupted:
    // no slices, so only a futex wake can make it look at its flag).
    let (ta, ra) = mpsc::channel();
    let a = Arc::clone(&r);
    std::thread::spawn(move || {
        let _ = ta.send(a.wait(0, 0, Some(Duration::from_secs(60))));
    });
    let stop_b = Arc::new(AtomicBool::new(false));
    let (tb, rb) = mpsc::channel();
    let (b, flag) = (Arc::clone(&r), Arc::clone(&stop_b));
    std::thread::spawn(move || {
        let outcome = b.wait_interruptible(8, 0, Some(Duration::from_secs(60)), None, &mut || {
            flag.load(Ordering::SeqCst)
        });
        let _ = tb.send(outcome);
    });

    // End A with a notify on its word (retried until it is asleep in the kernel).
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut woken = 0;
    while woken == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
        woken = r.notify(0, 1).unwrap();
    }
    assert_eq!(woken, 1);
    assert_eq!(
        ra.recv_timeout(Duration::from_secs(10)).unwrap().unwrap(),
        WaitOutcome::Ok
    );
    // B is still waiting: a wake on A's word must not have reached it.
    assert!(rb.recv_timeout(Duration::from_millis(200)).is_err());

    // Now interrupt B: only `wake_waiters` (which wakes the words this region's waiters sleep
    // on) can get it out of the kernel.
    stop_b.store(true, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(10);
    let outcome = loop {
        r.wake_waiters();
        if let Ok(o) = rb.recv_timeout(Duration::from_millis(10)) {
            break Some(o);
        }
        if Instant::now() >= deadline {
            break None;
        }
    };
    let outcome = outcome.expect("wake_waiters reached the waiter on offset 8 within 10 s");
    assert!(
        matches!(outcome, Err(RegionError::Interrupted)),
        "{outcome:?}"
    );
    assert_eq!(r.notify(8, u32::MAX).unwrap(), 0, "nobody left on offset 8");
}

#[test]
fn close_wakes_a_waiter_whose_wait_then_fails_with_closed() {
    let name = unique("close");
    let _c = Cleanup(name.clone());
    let r = region(&name, 4096);
    let (tx, rx) = mpsc::channel();
    let w = Arc::clone(&r);
    std::thread::spawn(move || {
        let _ = tx.send(w.wait(4, 0, Some(Duration::from_secs(60))));
    });
    std::thread::sleep(Duration::from_millis(100));
    let closer = Arc::clone(&r);
    let (cx, crx) = mpsc::channel();
    std::thread::spawn(move || {
        closer.close(true);
        let _ = cx.send(());
    });
    crx.recv_timeout(Duration::from_secs(10))
        .expect("close returned within 10 s");
    let outcome = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the waiter returned");
    assert!(matches!(outcome, Err(RegionError::Closed)), "{outcome:?}");
    assert!(r.is_closed());
    assert!(matches!(r.load(0), Err(RegionError::Closed)));
}

/// `read_unmapped` reads through the handle: the unwritten pages of a sparse segment stay
/// unallocated, the bytes are those of the segment, and a segment shorter than the range is
/// `Shrunk` with the sizes (a peer truncated it), while the part left still reads.
#[test]
fn read_unmapped_leaves_holes_unallocated_and_reports_a_shrink() {
    use std::os::unix::fs::MetadataExt;
    const SIZE: usize = 16 << 20;
    let name = unique("read-unmapped");
    let _c = Cleanup(name.clone());
    let r = region(&name, SIZE as u64);
    r.write(SIZE / 2, &[1, 2, 3, 4]).unwrap();
    let path = format!("/dev/shm/{name}");
    let mut all = vec![0xeeu8; SIZE];
    r.read_unmapped(0, &mut all).unwrap();
    assert_eq!(&all[SIZE / 2 - 1..SIZE / 2 + 5], &[0, 1, 2, 3, 4, 0]);
    assert!(all[..SIZE / 2 - 1].iter().all(|&b| b == 0));
    let allocated = std::fs::metadata(&path).unwrap().blocks() * 512;
    assert!(allocated <= 1 << 20, "{allocated} bytes allocated");
    let mut part = [0u8; 8];
    r.read_unmapped(SIZE / 2 - 2, &mut part).unwrap();
    assert_eq!(part, [0, 0, 1, 2, 3, 4, 0, 0]);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(4096)
        .unwrap();
    match r.read_unmapped(0, &mut all) {
        Err(RegionError::Shrunk { size, needed }) => {
            assert_eq!((size, needed), (4096, SIZE as u64))
        }
        other => panic!("expected Shrunk, got {other:?}"),
    }
    let mut left = [0xeeu8; 4096];
    r.read_unmapped(0, &mut left).unwrap();
    assert!(left.iter().all(|&b| b == 0));
    assert!(matches!(
        r.read_unmapped(SIZE - 4, &mut [0u8; 8]),
        Err(RegionError::OutOfRange)
    ));
    r.close(true);
}
