//! Which OS object a segment name stands for: one pure function, [`shm_names`], with the OS as a
//! parameter, so that every OS's rule is unit-tested on any machine (the backends call it with
//! [`NameOs::CURRENT`]; `unix.rs` opens through [`ShmNames::open_first`]).

use std::io;

use crate::{Error, NameError};

/// The OS whose naming rule [`shm_names`] applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameOs {
    /// POSIX shared memory as glibc and musl name it (`/dev/shm`); also used for every Unix
    /// other than macOS.
    Linux,
    /// POSIX shared memory in xnu: the exact string is the key.
    MacOs,
    /// Named file mappings.
    Windows,
}

impl NameOs {
    /// The rule of the OS this crate was compiled for.
    pub const CURRENT: NameOs = if cfg!(target_os = "macos") {
        NameOs::MacOs
    } else if cfg!(windows) {
        NameOs::Windows
    } else {
        NameOs::Linux
    };
}

/// The OS object name(s) one segment name stands for, exactly as the OS calls take them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShmNames {
    /// The one object `create` and `unlink` touch, and the first one `open` tries. Linux: always
    /// with one leading `/`; macOS and Windows: the name as given.
    pub exact: String,
    /// macOS, for a name without a leading `/`: that name with `/` prepended, which `open` (never
    /// `create` or `unlink`) tries when [`exact`](Self::exact) does not exist. `None` elsewhere,
    /// and when the prefixed name would be longer than macOS allows (so no object can have it).
    pub open_fallback: Option<String>,
}

impl ShmNames {
    /// The names `open` tries, in order.
    pub fn open_order(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.exact.as_str()).chain(self.open_fallback.as_deref())
    }

    /// Runs `open` on each of [`open_order`](Self::open_order) until one succeeds or fails with
    /// anything but "does not exist" (`ENOENT`); returns that result, or the last "does not
    /// exist". This is how the backends open a segment.
    pub fn open_first<T>(
        &self,
        mut open: impl FnMut(&str) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let mut result = open(&self.exact);
        if let Some(next) = &self.open_fallback {
            if matches!(&result, Err(Error::Os { source, .. }) if source.kind() == io::ErrorKind::NotFound)
            {
                result = open(next);
            }
        }
        result
    }
}

const LINUX_MAX: usize = 255;
const MACOS_MAX: usize = 31;
const WINDOWS_MAX: usize = 260;

/// Checks `name` against `os`'s rules (no syscall) and returns the object name(s) it stands for.
///
/// * **Linux** (and any Unix but macOS): glibc and musl strip the leading `/` before they look
///   the name up, so `x` and `/x` are one object (`/dev/shm/x`). A leading `/` is optional; the
///   rest must be 1 … 255 bytes (`NAME_MAX`), without `/` or NUL, and not `.` or `..`.
/// * **macOS**: xnu (`bsd/kern/posix_shm.c`) keys objects by the exact string given to
///   `shm_open`: a `/` is an ordinary byte, so `x` and `/x` are two objects, and the string, a
///   leading `/` included, may be at most 31 bytes (`PSHMNAMLEN`; a longer one fails with
///   `ENAMETOOLONG`). node-shared-mem 2.x passed the name unchanged, and so does a .NET or C
///   peer calling `shm_open("x")`; Python's `multiprocessing.shared_memory` (like most C code)
///   uses `/x` for the name `x`. Hence:
///   - `create` and `unlink` touch exactly the string given: `x` is the object `x`, `/x` is `/x`.
///   - `open` tries the string given first, so it opens what 2.x opened whenever that exists;
///     only a name without a leading `/`, and only when that object does not exist (`ENOENT`),
///     is then tried as `/x`. Where both exist, `x` is opened, always; `/x` opens only `/x`.
///   - The character rules are Linux's (xnu itself would take `a/b`, `.` or `..`), so that a
///     name means the same thing on both.
/// * **Windows**: the name is used as given (`Local\…`, `Global\…`): non-empty, no NUL, at most
///   260 UTF-16 units.
pub fn shm_names(name: &str, os: NameOs) -> Result<ShmNames, NameError> {
    if os == NameOs::Windows {
        if name.is_empty() {
            return Err(NameError::Empty);
        }
        if name.contains('\0') {
            return Err(NameError::Nul);
        }
        let len = name.encode_utf16().count();
        if len > WINDOWS_MAX {
            return Err(NameError::TooLong {
                len,
                max: WINDOWS_MAX,
                platform: "Windows (MAX_PATH, in UTF-16 units)",
            });
        }
        return Ok(ShmNames {
            exact: name.to_string(),
            open_fallback: None,
        });
    }
    let slashed = name.starts_with('/');
    let bare = if slashed { &name[1..] } else { name };
    if bare.is_empty() {
        return Err(NameError::Empty);
    }
    if bare.contains('\0') {
        return Err(NameError::Nul);
    }
    if bare.contains('/') {
        return Err(NameError::Slash);
    }
    if bare == "." || bare == ".." {
        return Err(NameError::Dots);
    }
    if os == NameOs::Linux {
        if bare.len() > LINUX_MAX {
            return Err(NameError::TooLong {
                len: bare.len(),
                max: LINUX_MAX,
                platform: "Linux (NAME_MAX, after the leading '/')",
            });
        }
        return Ok(ShmNames {
            exact: format!("/{bare}"),
            open_fallback: None,
        });
    }
    if name.len() > MACOS_MAX {
        return Err(NameError::TooLong {
            len: name.len(),
            max: MACOS_MAX,
            platform: "macOS (PSHMNAMLEN, the name as given, a leading '/' included)",
        });
    }
    Ok(ShmNames {
        exact: name.to_string(),
        open_fallback: (!slashed && name.len() < MACOS_MAX).then(|| format!("/{name}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use NameOs::{Linux, MacOs, Windows};

    fn ok(exact: &str, fallback: Option<&str>) -> Result<ShmNames, NameError> {
        Ok(ShmNames {
            exact: exact.to_string(),
            open_fallback: fallback.map(str::to_string),
        })
    }

    fn too_long(len: usize, max: usize) -> impl Fn(Result<ShmNames, NameError>) -> bool {
        move |r| matches!(r, Err(NameError::TooLong { len: l, max: m, .. }) if l == len && m == max)
    }

    #[test]
    fn current_os() {
        let expected = if cfg!(target_os = "macos") {
            MacOs
        } else if cfg!(windows) {
            Windows
        } else {
            Linux
        };
        assert_eq!(NameOs::CURRENT, expected);
    }

    #[test]
    fn linux_one_object_with_or_without_the_slash() {
        assert_eq!(shm_names("x", Linux), ok("/x", None));
        assert_eq!(shm_names("/x", Linux), ok("/x", None));
        assert_eq!(shm_names("...", Linux), ok("/...", None));
        assert_eq!(shm_names("ünï", Linux), ok("/ünï", None));
    }

    #[test]
    fn macos_the_exact_string_then_slash_for_open_only() {
        assert_eq!(shm_names("x", MacOs), ok("x", Some("/x")));
        assert_eq!(shm_names("/x", MacOs), ok("/x", None));
        assert_eq!(shm_names("...", MacOs), ok("...", Some("/...")));
        let n = shm_names("x", MacOs).unwrap();
        assert_eq!(n.open_order().collect::<Vec<_>>(), ["x", "/x"]);
        let n = shm_names("/x", MacOs).unwrap();
        assert_eq!(n.open_order().collect::<Vec<_>>(), ["/x"]);
    }

    #[test]
    fn windows_as_given() {
        assert_eq!(shm_names("x", Windows), ok("x", None));
        assert_eq!(shm_names("/x", Windows), ok("/x", None));
        assert_eq!(shm_names("/", Windows), ok("/", None));
        assert_eq!(shm_names("//x", Windows), ok("//x", None));
        assert_eq!(shm_names(".", Windows), ok(".", None));
        assert_eq!(shm_names("..", Windows), ok("..", None));
        assert_eq!(shm_names("Local\\a/b", Windows), ok("Local\\a/b", None));
    }

    #[test]
    fn refused_names_on_each_os() {
        use NameError::*;
        let unix = [Linux, MacOs];
        for os in [Linux, MacOs, Windows] {
            assert_eq!(shm_names("", os), Err(Empty), "{os:?}");
            assert_eq!(shm_names("a\0b", os), Err(Nul), "{os:?}");
            assert_eq!(shm_names("\0", os), Err(Nul), "{os:?}");
        }
        for os in unix {
            assert_eq!(shm_names("/", os), Err(Empty), "{os:?}");
            assert_eq!(shm_names("//", os), Err(Slash), "{os:?}");
            assert_eq!(shm_names("//x", os), Err(Slash), "{os:?}");
            assert_eq!(shm_names("a/b", os), Err(Slash), "{os:?}");
            assert_eq!(shm_names("x/", os), Err(Slash), "{os:?}");
            assert_eq!(shm_names("/\0", os), Err(Nul), "{os:?}");
            for dots in [".", "..", "/.", "/.."] {
                assert_eq!(shm_names(dots, os), Err(Dots), "{os:?} {dots}");
            }
        }
    }

    #[test]
    fn linux_length_is_counted_after_the_slash() {
        let y = |n| "y".repeat(n);
        assert_eq!(shm_names(&y(255), Linux), ok(&format!("/{}", y(255)), None));
        assert_eq!(
            shm_names(&format!("/{}", y(255)), Linux),
            ok(&format!("/{}", y(255)), None)
        );
        assert!(too_long(256, 255)(shm_names(&y(256), Linux)));
        assert!(too_long(256, 255)(shm_names(
            &format!("/{}", y(256)),
            Linux
        )));
        // Bytes, not characters: 128 two-byte characters are 256 bytes.
        assert!(too_long(256, 255)(shm_names(&"é".repeat(128), Linux)));
    }

    #[test]
    fn macos_length_is_the_whole_string() {
        let y = |n| "y".repeat(n);
        // 30 bytes bare: both it and '/' + it fit in 31.
        assert_eq!(
            shm_names(&y(30), MacOs),
            ok(&y(30), Some(&format!("/{}", y(30))))
        );
        // 31 bytes bare: fits, but '/' + it (32) cannot exist, so there is no fallback.
        assert_eq!(shm_names(&y(31), MacOs), ok(&y(31), None));
        assert!(too_long(32, 31)(shm_names(&y(32), MacOs)));
        // With the '/': 31 bytes in all.
        let slashed = format!("/{}", y(30));
        assert_eq!(shm_names(&slashed, MacOs), ok(&slashed, None));
        assert!(too_long(32, 31)(shm_names(&format!("/{}", y(31)), MacOs)));
        assert!(too_long(32, 31)(shm_names(&"é".repeat(16), MacOs)));
    }

    #[test]
    fn windows_length_is_in_utf16_units() {
        let y = |n| "y".repeat(n);
        assert_eq!(shm_names(&y(260), Windows), ok(&y(260), None));
        assert!(too_long(261, 260)(shm_names(&y(261), Windows)));
        // U+1F600 is 2 UTF-16 units (4 UTF-8 bytes): 130 of them are exactly 260 units.
        assert!(shm_names(&"😀".repeat(130), Windows).is_ok());
        assert!(too_long(262, 260)(shm_names(&"😀".repeat(131), Windows)));
    }

    #[test]
    fn the_platform_text_names_the_rule() {
        let text = |r: Result<ShmNames, NameError>| r.unwrap_err().to_string();
        assert_eq!(
            text(shm_names(&"y".repeat(32), MacOs)),
            "the name is 32 bytes long; macOS (PSHMNAMLEN, the name as given, a leading '/' \
             included) allows at most 31"
        );
        assert_eq!(
            text(shm_names(&"y".repeat(256), Linux)),
            "the name is 256 bytes long; Linux (NAME_MAX, after the leading '/') allows at most 255"
        );
    }

    /// A stand-in for xnu's table of objects: `open` succeeds for a name in `existing`, fails
    /// with `EACCES` for one in `denied`, else with `ENOENT`; `tried` records the order.
    fn simulate(
        name: &str,
        existing: &[&str],
        denied: &[&str],
    ) -> (Result<String, Error>, Vec<String>) {
        let names = shm_names(name, MacOs).unwrap();
        let mut tried = Vec::new();
        let r = names.open_first(|n| {
            tried.push(n.to_string());
            if denied.contains(&n) {
                Err(Error::os(
                    "shm_open",
                    io::ErrorKind::PermissionDenied.into(),
                ))
            } else if existing.contains(&n) {
                Ok(n.to_string())
            } else {
                Err(Error::os("shm_open", io::ErrorKind::NotFound.into()))
            }
        });
        (r, tried)
    }

    fn kind<T>(r: Result<T, Error>) -> io::ErrorKind {
        match r {
            Err(Error::Os { source, .. }) => source.kind(),
            _ => panic!("expected an OS error"),
        }
    }

    #[test]
    fn macos_open_order() {
        // What 2.x (and a .NET/C creator) made: found at once.
        let (r, tried) = simulate("x", &["x"], &[]);
        assert_eq!((r.unwrap(), tried), ("x".into(), vec!["x".into()]));
        // What Python made for the same name: found second.
        let (r, tried) = simulate("x", &["/x"], &[]);
        assert_eq!(
            (r.unwrap(), tried),
            ("/x".into(), vec!["x".into(), "/x".into()])
        );
        // Both exist: the exact one, always.
        let (r, _) = simulate("x", &["x", "/x"], &[]);
        assert_eq!(r.unwrap(), "x");
        // A leading '/' opens only that object, never the bare one.
        let (r, tried) = simulate("/x", &["x"], &[]);
        assert_eq!(kind(r), io::ErrorKind::NotFound);
        assert_eq!(tried, ["/x"]);
        // Neither: ENOENT after both.
        let (r, tried) = simulate("x", &[], &[]);
        assert_eq!(kind(r), io::ErrorKind::NotFound);
        assert_eq!(tried, ["x", "/x"]);
        // Any other error on the exact name is the answer: no fallback behind it.
        let (r, tried) = simulate("x", &["x", "/x"], &["x"]);
        assert_eq!(kind(r), io::ErrorKind::PermissionDenied);
        assert_eq!(tried, ["x"]);
    }

    #[test]
    fn linux_and_windows_open_one_name() {
        for (name, os, only) in [("x", Linux, "/x"), ("/x", Linux, "/x"), ("x", Windows, "x")] {
            let names = shm_names(name, os).unwrap();
            let mut tried = Vec::new();
            let r: Result<(), Error> = names.open_first(|n| {
                tried.push(n.to_string());
                Err(Error::os("shm_open", io::ErrorKind::NotFound.into()))
            });
            assert!(r.is_err());
            assert_eq!(tried, [only], "{name} {os:?}");
        }
    }
}
