//! Integration tests of shm-core's public API that kill cargo-mutants survivors (see
//! docs/mutants-shm-core.md): the exact texts and codes callers (the binding) turn into JS
//! errors, the error `source()` chain, `WaitOutcome` names, `Debug` output, `Mapping` accessors
//! and the run-time symbol lookup. Linux only (errno numbers, /dev/shm).
#![cfg(target_os = "linux")]

use shm_core::{
    error_code, runtime_symbol, validate_name, Access, CreateOptions, Error, NameError, Segment,
    WaitOutcome,
};
use std::error::Error as _;
use std::io;

mod common;
use common::{unique, Cleanup};

#[test]
fn name_error_texts_are_exact() {
    assert_eq!(NameError::Empty.to_string(), "the name must not be empty");
    assert_eq!(
        NameError::Nul.to_string(),
        "the name must not contain NUL characters"
    );
    assert_eq!(
        NameError::Slash.to_string(),
        "the name must not contain '/' after its first character"
    );
    assert_eq!(
        NameError::Dots.to_string(),
        "the name must not be '.' or '..'"
    );
    assert_eq!(
        NameError::TooLong {
            len: 300,
            max: 255,
            platform: "Linux"
        }
        .to_string(),
        "the name is 300 bytes long; Linux allows at most 255"
    );
}

#[test]
fn error_texts_and_sources_are_exact() {
    assert_eq!(
        Error::Name(NameError::Dots).to_string(),
        "the name must not be '.' or '..'"
    );
    assert_eq!(
        Error::Empty.to_string(),
        "the segment is 0 bytes long; there is nothing to map"
    );
    assert_eq!(
        Error::TooLarge {
            requested: 10,
            size: 4
        }
        .to_string(),
        "a length of 10 bytes was asked of a segment of 4 bytes"
    );
    assert_eq!(
        Error::ExistingTooSmall {
            requested: 10,
            size: 4
        }
        .to_string(),
        "the existing segment is 4 bytes, smaller than the 10 bytes asked for"
    );
    // An OS error from a real call: text, code and source chain.
    let err = Segment::open(&unique("missing"), Access::ReadWrite).unwrap_err();
    assert!(err.to_string().starts_with("shm_open failed: "), "{err}");
    assert_eq!(err.code(), Some("ENOENT"));
    let source = err.source().expect("an OS error has a source");
    let io = source.downcast_ref::<io::Error>().expect("the io::Error");
    assert_eq!(io.raw_os_error(), Some(2));
    // Errors that are not from the OS have neither a code nor a source.
    for e in [
        Error::Empty,
        Error::Name(NameError::Empty),
        Error::TooLarge {
            requested: 2,
            size: 1,
        },
    ] {
        assert!(e.source().is_none(), "{e}");
        assert_eq!(e.code(), None);
    }
}

#[test]
fn every_mapped_errno_has_its_node_code() {
    let table = [
        (1, "EPERM"),
        (2, "ENOENT"),
        (4, "EINTR"),
        (6, "ENXIO"),
        (9, "EBADF"),
        (11, "EAGAIN"),
        (12, "ENOMEM"),
        (13, "EACCES"),
        (14, "EFAULT"),
        (16, "EBUSY"),
        (17, "EEXIST"),
        (19, "ENODEV"),
        (20, "ENOTDIR"),
        (21, "EISDIR"),
        (22, "EINVAL"),
        (23, "ENFILE"),
        (24, "EMFILE"),
        (27, "EFBIG"),
        (28, "ENOSPC"),
        (30, "EROFS"),
        (36, "ENAMETOOLONG"),
        (38, "ENOSYS"),
        (40, "ELOOP"),
        (75, "EOVERFLOW"),
        (95, "ENOTSUP"),
        (110, "ETIMEDOUT"),
    ];
    for (errno, code) in table {
        assert_eq!(
            error_code(&io::Error::from_raw_os_error(errno)),
            code,
            "errno {errno}"
        );
    }
    assert_eq!(error_code(&io::Error::from_raw_os_error(26)), "UNKNOWN"); // ETXTBSY: unnamed
    assert_eq!(error_code(&io::Error::other("no errno")), "UNKNOWN");
}

#[test]
fn wait_outcomes_are_named_as_atomics_wait_names_them() {
    assert_eq!(WaitOutcome::Ok.as_str(), "ok");
    assert_eq!(WaitOutcome::NotEqual.as_str(), "not-equal");
    assert_eq!(WaitOutcome::TimedOut.as_str(), "timed-out");
}

#[test]
fn runtime_symbol_finds_what_the_process_exports_and_nothing_else() {
    // The test binary links libc dynamically: its exports are found, a made-up name is not.
    assert!(runtime_symbol(c"malloc").is_some());
    assert!(runtime_symbol(c"dlsym").is_some());
    assert!(runtime_symbol(c"node_api_no_such_function_in_this_process").is_none());
}

#[test]
fn validate_name_applies_the_linux_limit_after_the_slash() {
    assert_eq!(validate_name(&"x".repeat(255)), Ok(()));
    assert_eq!(validate_name(&format!("/{}", "x".repeat(255))), Ok(()));
    match validate_name(&"x".repeat(256)) {
        Err(NameError::TooLong {
            len: 256, max: 255, ..
        }) => {}
        other => panic!("256 bytes: {other:?}"),
    }
    assert_eq!(validate_name("/."), Err(NameError::Dots));
    assert_eq!(validate_name(".."), Err(NameError::Dots));
    assert_eq!(validate_name("a/b"), Err(NameError::Slash));
    assert_eq!(validate_name("a\0b"), Err(NameError::Nul));
    assert_eq!(validate_name("/"), Err(NameError::Empty));
}

#[test]
fn debug_output_and_mapping_accessors() {
    let name = unique("dbg");
    let _cleanup = Cleanup(name.clone());
    let seg = Segment::create(&name, 8192, CreateOptions::default()).unwrap();
    assert!(seg.created());
    assert_eq!(seg.access(), Access::ReadWrite);
    assert_eq!(format!("{seg:?}"), "Segment { access: ReadWrite, .. }");
    // SAFETY: this test owns the segment (unique name) and never shrinks it.
    let map = unsafe { seg.map(Some(4096)) }.unwrap();
    assert_eq!(map.len(), 4096);
    assert!(!map.is_empty());
    assert_eq!(map.access(), Access::ReadWrite);
    assert!(map.local_writes_allowed());
    let dbg = format!("{map:?}");
    assert!(
        dbg.starts_with("Mapping { ptr: 0x") && dbg.ends_with(", len: 4096, access: ReadWrite }"),
        "{dbg}"
    );
    map.write(4092, &[1, 2, 3, 4]);
    let mut back = [0u8; 4];
    map.read(4092, &mut back);
    assert_eq!(back, [1, 2, 3, 4]);
    // The bytes are the segment's: a second segment handle maps them too.
    let again = Segment::open(&name, Access::ReadOnly).unwrap();
    assert!(!again.created());
    assert_eq!(again.access(), Access::ReadOnly);
    // SAFETY: as above.
    let ro = unsafe { again.map(None) }.unwrap();
    assert_eq!(ro.len(), 8192);
    assert_eq!(ro.access(), Access::ReadOnly);
    assert!(!ro.local_writes_allowed(), "a shared read-only mapping");
    let mut b = [0u8; 1];
    ro.read(4095, &mut b);
    assert_eq!(b, [4]);
}
