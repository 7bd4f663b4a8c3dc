//! The Rust peer against docs/channel.md version 2: round trips, the exact maximum, a version-1
//! segment, garbage from a peer (every call returns, with `Error::Layout`, never a panic or a
//! hang), the end race, and one consumer per channel within a process.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shm_channel::{Channel, Error, Mode};
use shm_core::{Access, Region, Segment};

struct Name(String);

impl Name {
    fn new(tag: &str) -> Name {
        static N: AtomicU64 = AtomicU64::new(0);
        Name(format!(
            "shm-channel-test-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ))
    }
}

impl Drop for Name {
    fn drop(&mut self) {
        let _ = Segment::unlink(&self.0);
        shm_core::liveness::remove_stale_locks(&self.0);
    }
}

/// A raw view of the segment, as a hostile peer has it.
fn raw(name: &str) -> Region {
    let segment = Segment::open(name, Access::ReadWrite).unwrap();
    // SAFETY: the test never truncates the segment while it is mapped.
    unsafe { Region::open(segment, None).unwrap() }
}

fn layout<T: std::fmt::Debug>(r: Result<T, Error>, what: &str) {
    assert!(matches!(r, Err(Error::Layout(_))), "{what}: {r:?}");
}

#[test]
fn round_trip_both_modes_and_the_exact_maximum() {
    for mode in [Mode::ManyToOne, Mode::OneToOne] {
        let n = Name::new("rt");
        let mut tx = Channel::create(&n.0, 256, mode, 1000).unwrap();
        let mut rx = Channel::open(&n.0).unwrap();
        let mut m = Vec::new();
        let max = vec![0x5a; tx.max_message()];
        assert!(
            tx.try_send(&max).unwrap(),
            "{mode:?}: capacity − 8 bytes fit an empty ring"
        );
        assert!(rx.receive(&mut m, Some(Duration::from_secs(1))).unwrap());
        assert_eq!(m, max);
        tx.send(b"x", None).unwrap();
        assert!(rx.try_receive(&mut m).unwrap());
        assert!(!tx.try_send(&max).unwrap(), "padding first");
        assert!(!rx.try_receive(&mut m).unwrap(), "padding only");
        assert!(tx.try_send(&max).unwrap());
        assert!(rx.try_receive(&mut m).unwrap());
        assert_eq!(m.len(), 248);
        assert!(matches!(tx.try_send(&[0; 249]), Err(Error::TooLarge(249))));
    }
}

#[test]
fn a_version_1_segment_is_refused_naming_its_version() {
    let n = Name::new("v1");
    drop(Channel::create(&n.0, 256, Mode::ManyToOne, 1000).unwrap());
    raw(&n.0).store(4, 1).unwrap();
    match Channel::open(&n.0) {
        Err(Error::Layout(why)) => assert!(why.contains("layout version 1"), "{why}"),
        other => panic!("{:?}", other.map(|_| ())),
    }
}

#[test]
fn garbage_is_a_layout_error_after_bounded_work() {
    type Set = fn(&Region);
    let cases: [(&str, Set); 5] = [
        ("padding of length −8", |r| {
            r.store(1024 + 4, -8).unwrap();
            r.store(1024, 2).unwrap();
            r.store(128, 16).unwrap();
        }),
        ("padding of length 0xFFFFFFF1", |r| {
            r.store(1024 + 4, 0xFFFF_FFF1_u32 as i32).unwrap();
            r.store(1024, 2).unwrap();
            r.store(128, 16).unwrap();
        }),
        ("a message of length 2^31", |r| {
            r.store(1024 + 4, i32::MIN).unwrap();
            r.store(1024, 1).unwrap();
            r.store(128, 16).unwrap();
        }),
        ("tail − head = 2^32 − 8", |r| {
            r.store(128, -8).unwrap();
        }),
        ("a state of 7", |r| {
            r.store(1024, 7).unwrap();
            r.store(128, 16).unwrap();
        }),
    ];
    for (what, set) in cases {
        let n = Name::new("garbage");
        let mut ch = Channel::create(&n.0, 256, Mode::ManyToOne, 1000).unwrap();
        set(&raw(&n.0));
        let mut m = Vec::new();
        let t0 = Instant::now();
        layout(ch.try_receive(&mut m), what);
        layout(ch.receive(&mut m, Some(Duration::from_millis(200))), what);
        assert!(t0.elapsed() < Duration::from_secs(2), "{what}: bounded");
        assert!(
            m.capacity() <= 256,
            "{what}: no allocation beyond the capacity"
        );
    }
    // Garbage in head, seen by a producer.
    let n = Name::new("garbage-head");
    let mut ch = Channel::create(&n.0, 256, Mode::ManyToOne, 1000).unwrap();
    raw(&n.0).store(256, 0x4000_0000).unwrap();
    layout(ch.try_send(b"x"), "head far from tail");
}

#[test]
fn a_claim_by_token_minus_2_pow_31_is_recovered_without_a_panic() {
    let n = Name::new("min");
    let mut ch = Channel::create(&n.0, 1024, Mode::ManyToOne, 10).unwrap();
    let r = raw(&n.0);
    r.store(1024 + 4, 8).unwrap();
    r.store(1024, i32::MIN).unwrap();
    r.store(128, 16).unwrap();
    ch.send(b"next", None).unwrap();
    let mut m = Vec::new();
    assert!(ch.receive(&mut m, Some(Duration::from_secs(2))).unwrap());
    assert_eq!(m, b"next");
}

#[test]
fn producer_lock_garbage_is_taken_over_and_a_live_holder_bounds_try_send() {
    let n = Name::new("lock");
    let mut ch = Channel::create(&n.0, 1024, Mode::ManyToOne, 1000).unwrap();
    let r = raw(&n.0);
    for junk in [-1, i32::MAX, 1, i32::MIN] {
        r.store(132, junk).unwrap();
        assert!(ch.try_send(b"m").unwrap(), "producerLock = {junk}");
    }
    // A live participant's token in the lock: try_send gives up, send returns by its timeout.
    let live = shm_core::liveness::ParticipantLock::acquire(&n.0).unwrap();
    r.store(132, live.token()).unwrap();
    let t0 = Instant::now();
    assert!(!ch.try_send(b"m").unwrap());
    assert!(matches!(
        ch.send(b"m", Some(Duration::from_millis(100))),
        Err(Error::TimedOut)
    ));
    assert!(t0.elapsed() < Duration::from_secs(2));
    drop(live);
    assert!(
        ch.try_send(b"m").unwrap(),
        "its lock file is gone: taken over"
    );
}

#[test]
fn a_negative_consumer_sleepers_costs_latency_not_a_hang() {
    let n = Name::new("sleepers");
    let mut rx = Channel::create(&n.0, 1024, Mode::ManyToOne, 1000).unwrap();
    let mut m = Vec::new();
    assert!(!rx.try_receive(&mut m).unwrap());
    raw(&n.0).store(388, -5).unwrap();
    let name = n.0.clone();
    let sender = std::thread::spawn(move || {
        let mut tx = Channel::open(&name).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        tx.send(b"woke", None).unwrap();
    });
    let t0 = Instant::now();
    assert!(rx.receive(&mut m, Some(Duration::from_secs(3))).unwrap());
    assert_eq!(m, b"woke");
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    sender.join().unwrap();
}

#[test]
fn one_consumer_per_channel_also_within_a_process() {
    let n = Name::new("busy");
    let mut a = Channel::create(&n.0, 1024, Mode::ManyToOne, 1000).unwrap();
    let mut b = Channel::open(&n.0).unwrap();
    let mut m = Vec::new();
    assert!(!a.try_receive(&mut m).unwrap());
    assert!(matches!(b.try_receive(&mut m), Err(Error::Busy(_))));
    drop(b);
    a.send(b"still mine", None).unwrap();
    assert!(a.try_receive(&mut m).unwrap());
    drop(a);
    let mut c = Channel::open(&n.0).unwrap();
    assert!(
        !c.try_receive(&mut m).unwrap(),
        "taken over once the first closed"
    );
}

#[test]
fn end_while_a_producer_sends_flat_out_loses_nothing() {
    for round in 0..20 {
        let mode = if round % 2 == 0 {
            Mode::ManyToOne
        } else {
            Mode::OneToOne
        };
        let n = Name::new("end");
        let mut rx = Channel::create(&n.0, 4096, mode, 1000).unwrap();
        let name = n.0.clone();
        let go = Arc::new(AtomicBool::new(false));
        let go2 = Arc::clone(&go);
        let producer = std::thread::spawn(move || {
            let mut tx = Channel::open(&name).unwrap();
            let mut sent = 0u64;
            go2.store(true, Ordering::SeqCst);
            loop {
                match tx.try_send(&[0; 8]) {
                    Ok(true) => sent += 1,
                    Ok(false) => {}
                    Err(Error::Ended) => return sent,
                    Err(e) => panic!("{e}"),
                }
            }
        });
        while !go.load(Ordering::SeqCst) {
            std::hint::spin_loop();
        }
        let mut m = Vec::new();
        let mut received = 0u64;
        let until = Instant::now() + Duration::from_millis(2 + round % 5);
        while Instant::now() < until {
            if rx.try_receive(&mut m).unwrap() {
                received += 1;
            }
        }
        rx.end().unwrap();
        while rx.receive(&mut m, Some(Duration::from_secs(5))).unwrap() {
            received += 1;
        }
        assert_eq!(
            received,
            producer.join().unwrap(),
            "round {round} ({mode:?})"
        );
    }
}

/// The one-to-one producer trusts its cached `head` only for room it shows: over many laps it
/// fills the ring exactly (never over an unconsumed record), and a blocked `send` goes on as soon
/// as the consumer frees room (the polling and napping before it sleeps, then the sleep).
#[test]
fn one_to_one_cached_head_fills_exactly_and_never_overwrites() {
    let n = Name::new("cached");
    let mut tx = Channel::create(&n.0, 1024, Mode::OneToOne, 1000).unwrap();
    let mut rx = Channel::open(&n.0).unwrap();
    let mut m = Vec::new();
    let mut seq = 0u32;
    let mut next = 0u32;
    for lap in 0..40 {
        // 24-byte payloads: 32-byte records, 32 of them fill the ring.
        let mut sent = 0;
        while tx
            .try_send(&[seq.to_le_bytes(), [lap as u8; 4]].concat().repeat(3))
            .unwrap()
        {
            seq += 1;
            sent += 1;
            assert!(sent <= 32, "lap {lap}: more records than the ring holds");
        }
        assert_eq!(sent, if lap == 0 { 32 } else { 1 + lap % 7 }, "lap {lap}");
        // Free 1 + (lap + 1) % 7 records, and check every one received so far.
        for _ in 0..1 + (lap + 1) % 7 {
            assert!(rx.try_receive(&mut m).unwrap());
            assert_eq!(
                u32::from_le_bytes(m[0..4].try_into().unwrap()),
                next,
                "lap {lap}"
            );
            next += 1;
        }
    }
    // A full ring: `send` waits, and returns once the consumer (another thread) frees a record.
    while tx.try_send(&[0; 24]).unwrap() {}
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(30));
        let mut m = Vec::new();
        assert!(rx.try_receive(&mut m).unwrap());
        rx
    });
    let t0 = Instant::now();
    tx.send(&[1; 24], Some(Duration::from_secs(10))).unwrap();
    assert!(
        t0.elapsed() >= Duration::from_millis(20),
        "send waited for room"
    );
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "woken, not left to its re-check"
    );
    drop(t.join().unwrap());
    assert!(matches!(
        tx.send(&[1; 24], Some(Duration::from_millis(50))),
        Err(Error::TimedOut)
    ));
}
