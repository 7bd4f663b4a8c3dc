//! The fault guard at offsets near 2^31 and 2^32 (sparse segments: only the touched
//! pages cost memory). A peer shrinks the segment to one page past `base`; every guarded
//! operation past the new end is `Shrunk` with the right sizes, the bytes before it still work.
#![cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]

use shm_core::{CreateOptions, Region, RegionError, Segment};
use std::time::Duration;

mod common;
mod guard;
use common::{unique, Cleanup};
use guard::{truncate, PAGE};

fn shrunk(r: Result<impl std::fmt::Debug, RegionError>, size: u64, needed: u64) -> bool {
    match r {
        Err(RegionError::Shrunk { size: s, needed: n }) if s == size && n == needed => true,
        other => {
            eprintln!("expected Shrunk {{ size: {size}, needed: {needed} }}, got {other:?}");
            false
        }
    }
}

#[test]
fn guarded_operations_near_2_31_and_2_32() {
    for base in [
        (1usize << 31) - PAGE,
        (1usize << 32) - PAGE,
        (1usize << 32) + (1 << 31),
    ] {
        let name = unique("big");
        let _c = Cleanup(name.clone());
        let total = base + 3 * PAGE;
        let seg = Segment::create(&name, total as u64, CreateOptions::default()).unwrap();
        // SAFETY: the only truncation is below; reads past it go through guarded operations.
        let r = unsafe { Region::open(seg, None) }.unwrap();
        r.write(base, &[0x5a; 3 * PAGE]).unwrap();
        let end = (base + PAGE) as u64;
        truncate(&name, end);
        let off = base + 2 * PAGE + 8;
        let needed = off as u64 + 4;
        assert!(shrunk(r.load(off), end, needed), "load at {off:#x}");
        assert!(shrunk(r.store(off, 1), end, needed), "store");
        assert!(shrunk(r.add(off, 1), end, needed), "add");
        assert!(shrunk(r.compare_exchange(off, 0, 1), end, needed), "cas");
        assert!(
            shrunk(r.wait(off, 0, Some(Duration::from_millis(20))), end, needed),
            "wait"
        );
        assert!(shrunk(r.notify(off, 1), end, needed), "notify");
        let mut dst = [0xeeu8; 64];
        assert!(
            shrunk(r.read(base + PAGE - 8, &mut dst), end, end + 56),
            "read across the new end"
        );
        assert_eq!(dst, [0xee; 64], "read copied nothing");
        assert!(
            shrunk(r.write(base + PAGE - 8, &[1; 64]), end, end + 56),
            "write"
        );
        // a long copy from before base to past the end: the probe of the last byte faults
        let mut long = vec![0u8; 2 * PAGE + 64];
        assert!(
            shrunk(r.read(base - PAGE, &mut long), end, end + 64),
            "long read"
        );
        // what is left works
        let mut left = [0u8; 8];
        r.read(base + PAGE - 8, &mut left).unwrap();
        assert_eq!(left, [0x5a; 8]);
        assert_eq!(r.add(base + PAGE - 4, 1).unwrap(), 0x5a5a_5a5a);
        r.close(true);
    }
}
