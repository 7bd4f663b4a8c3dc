//! Safe handles over named, cross-process OS shared memory.
//!
//! * [`Segment`] is an open OS object: a POSIX shared-memory file descriptor (`shm_open`) on
//!   Linux/macOS, a named file-mapping `HANDLE` on Windows. It knows its size and can be mapped.
//! * [`Mapping`] is one view of a segment in this process's address space; dropping it unmaps.
//! * [`Region`] is a mapping shared between threads that can be closed while other threads
//!   are blocked in [`Region::wait`]: `close` wakes them and unmaps only after they have left.
//!
//! # Safety contract
//!
//! Shared memory is changed by other processes at any time and can be truncated under a mapping
//! (touching bytes past the new end raises `SIGBUS`). No Rust type can rule either out, so, as
//! `memmap2::MmapOptions::map` does, creating a view is `unsafe`: [`Segment::map`],
//! [`Segment::map_copy_on_write`] and [`Region::open`] state what the caller must uphold. What is
//! safe afterwards never hands out `&`/`&mut` references to the bytes (only raw pointers, copies
//! and atomics), so a peer's concurrent writes can tear a copy but cannot break Rust's aliasing
//! rules.
//!
//! Names: [`shm_names`] is the one rule, per OS, for which OS object a name stands for. On
//! macOS `x` and `/x` are two objects: [`Segment::create`] and [`Segment::unlink`] touch exactly
//! the string given, and [`Segment::open`] of a name without a leading `/` opens `x` if it exists,
//! else `/x` (see [`shm_names`]).
//!
//! Every platform difference lives in one file per OS (`unix.rs`, `windows.rs`, plus the
//! wait/notify primitive in `futex_linux.rs` / `futex_macos.rs`); `cfg` appears only at the
//! `mod` lines below. Errors keep the OS error (`std::io::Error`) and name the syscall.

#![deny(clippy::undocumented_unsafe_blocks)]

use std::fmt;
use std::io;
use std::ptr::NonNull;

#[cfg(unix)]
#[path = "unix.rs"]
mod os;
#[cfg(windows)]
#[path = "windows.rs"]
mod os;

#[cfg(target_os = "linux")]
#[path = "futex_linux.rs"]
mod futex;
#[cfg(target_os = "macos")]
#[path = "futex_macos.rs"]
mod futex;
#[cfg(all(unix, not(any(target_os = "linux", target_os = "macos"))))]
#[path = "futex_poll.rs"]
mod futex;
#[cfg(windows)]
#[path = "futex_poll.rs"]
mod futex;

mod names;

#[cfg(unix)]
#[path = "liveness_unix.rs"]
pub mod liveness;
#[cfg(not(unix))]
#[path = "liveness_other.rs"]
pub mod liveness;

// Copies and atomics that turn a peer's truncation into an error (`fault.rs` docs).
#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
#[path = "fault.rs"]
mod fault;
#[cfg(not(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
)))]
#[path = "fault_none.rs"]
mod fault;

mod region;

/// Puts the fault guard's SIGBUS/SIGSEGV handler back on top if another was installed since
/// the last [`Region::open`] (which does the same), chaining the newcomer; nothing if no region
/// was ever opened or where there is no guard. Two `sigaction` queries per signal when nothing
/// changed. For code that knows the action just changed (libuv's handler for a JS listener, or
/// its `SIG_DFL` when the last listener goes), so that regions already open stay guarded. A
/// handler already chained (libuv's, installed again) and `SIG_DFL`/`SIG_IGN` re-use their
/// chain slot, so adding and removing listeners costs no slot after the first. Returns `false`
/// when ours could not be put back on top because the chain is full (8 distinct actions per
/// signal): regions are then unguarded for that signal, the caller should say so.
pub fn reinstall_fault_guard() -> bool {
    fault::reinstall()
}

pub use names::{shm_names, NameOs, ShmNames};
pub use region::{Region, RegionError, WAIT_SLICE};

/// How a segment is opened and mapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Read-only. The mapping is copy-on-write where the OS allows it, so a local write lands
    /// in a private copy of that page and never reaches the segment.
    ReadOnly,
    /// Read-write, shared with every other process that maps the segment.
    ReadWrite,
}

/// Options for [`Segment::create`].
#[derive(Clone, Copy, Debug)]
pub struct CreateOptions {
    /// Permission bits of a new segment (Unix); ignored on Windows.
    pub mode: u32,
    /// Fail with `EEXIST` when the name exists (`true`), or open the existing segment (`false`).
    pub exclusive: bool,
}

impl Default for CreateOptions {
    fn default() -> Self {
        CreateOptions {
            mode: 0o600,
            exclusive: true,
        }
    }
}

/// Why a segment name was refused before any syscall.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NameError {
    /// The name is empty (or only the optional leading `/` on Unix).
    Empty,
    /// The name holds a NUL character.
    Nul,
    /// The name holds `/` after its first character (Unix, macOS included).
    Slash,
    /// The name is `.` or `..` (after the optional leading `/`), which name directories (Unix).
    Dots,
    /// The name is longer than the platform allows.
    TooLong {
        /// Length of the name as the OS counts it (bytes on Unix, UTF-16 units on Windows).
        len: usize,
        /// The platform's maximum.
        max: usize,
        /// Which platform rule this is, e.g. `"Linux (NAME_MAX, after the leading '/')"`.
        platform: &'static str,
    },
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::Empty => f.write_str("the name must not be empty"),
            NameError::Nul => f.write_str("the name must not contain NUL characters"),
            NameError::Slash => {
                f.write_str("the name must not contain '/' after its first character")
            }
            NameError::Dots => f.write_str("the name must not be '.' or '..'"),
            NameError::TooLong { len, max, platform } => write!(
                f,
                "the name is {len} bytes long; {platform} allows at most {max}"
            ),
        }
    }
}

/// An error from this crate: a refused name, a size problem, or an OS call that failed.
#[derive(Debug)]
pub enum Error {
    /// The name breaks the platform's rules; no syscall was made.
    Name(NameError),
    /// The segment exists but has size 0, so there is nothing to map.
    Empty,
    /// A mapping of `requested` bytes was asked of a segment of `size` bytes.
    TooLarge {
        /// Bytes asked for.
        requested: u64,
        /// The segment's real size.
        size: u64,
    },
    /// An existing segment is smaller than the size asked of a non-exclusive create.
    ExistingTooSmall {
        /// Bytes asked for.
        requested: u64,
        /// The existing segment's size.
        size: u64,
    },
    /// An OS call failed.
    Os {
        /// The failing call, e.g. `"shm_open"`, `"mmap"`.
        syscall: &'static str,
        /// The OS error, unchanged.
        source: io::Error,
    },
}

impl Error {
    pub(crate) fn os(syscall: &'static str, source: io::Error) -> Self {
        Error::Os { syscall, source }
    }

    /// The Node-style code of an OS error (`"ENOENT"`, `"EACCES"`, …), if this is one.
    pub fn code(&self) -> Option<&'static str> {
        match self {
            Error::Os { source, .. } => Some(error_code(source)),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Name(e) => e.fmt(f),
            Error::Empty => f.write_str("the segment is 0 bytes long; there is nothing to map"),
            Error::TooLarge { requested, size } => write!(
                f,
                "a length of {requested} bytes was asked of a segment of {size} bytes"
            ),
            Error::ExistingTooSmall { requested, size } => write!(
                f,
                "the existing segment is {size} bytes, smaller than the {requested} bytes asked for"
            ),
            Error::Os { syscall, source } => write!(f, "{syscall} failed: {source}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Os { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// The Node-style code (`"ENOENT"`, `"EACCES"`, …) of an OS error, `"UNKNOWN"` when unnamed.
pub fn error_code(err: &io::Error) -> &'static str {
    os::error_code(err)
}

/// Node's `errno` for an OS error: `-errno` on Unix; on Windows libuv's own number for the code
/// (`ENOENT` is -4058), as Node's `fs` errors carry it there.
pub fn error_errno(err: &io::Error) -> i32 {
    os::error_errno(err)
}

/// The text Node puts after the code in a system error's message (libuv's `uv_strerror`, the
/// same on every OS: `"EEXIST: file already exists, …"`); the OS's own text for a code libuv
/// does not name.
pub fn error_description(err: &io::Error) -> String {
    let text = match error_code(err) {
        "E2BIG" => "argument list too long",
        "EACCES" => "permission denied",
        "EADDRINUSE" => "address already in use",
        "EAGAIN" => "resource temporarily unavailable",
        "EBADF" => "bad file descriptor",
        "EBUSY" => "resource busy or locked",
        "ECANCELED" => "operation canceled",
        "ECHARSET" => "invalid Unicode character",
        "ECONNABORTED" => "software caused connection abort",
        "ECONNREFUSED" => "connection refused",
        "ECONNRESET" => "connection reset by peer",
        "EEXIST" => "file already exists",
        "EFAULT" => "bad address in system call argument",
        "EFBIG" => "file too large",
        "EHOSTUNREACH" => "host is unreachable",
        "EINTR" => "interrupted system call",
        "EINVAL" => "invalid argument",
        "EIO" => "i/o error",
        "EISDIR" => "illegal operation on a directory",
        "ELOOP" => "too many symbolic links encountered",
        "EMFILE" => "too many open files",
        "ENAMETOOLONG" => "name too long",
        "ENETUNREACH" => "network is unreachable",
        "ENFILE" => "file table overflow",
        "ENODEV" => "no such device",
        "ENOENT" => "no such file or directory",
        "ENOMEM" => "not enough memory",
        "ENOSPC" => "no space left on device",
        "ENOSYS" => "function not implemented",
        "ENOTCONN" => "socket is not connected",
        "ENOTDIR" => "not a directory",
        "ENOTEMPTY" => "directory not empty",
        "ENOTSUP" => "operation not supported on socket",
        "ENXIO" => "no such device or address",
        "EOF" => "end of file",
        "EOVERFLOW" => "value too large for defined data type",
        "EPERM" => "operation not permitted",
        "EPIPE" => "broken pipe",
        "EROFS" => "read-only file system",
        "ETIMEDOUT" => "connection timed out",
        "EXDEV" => "cross-device link not permitted",
        _ => {
            let mut desc = err.to_string();
            if let Some(i) = desc.find(" (os error") {
                desc.truncate(i);
            }
            return match desc.get(0..1) {
                Some(first) => first.to_lowercase() + &desc[1..],
                None => desc,
            };
        }
    };
    text.to_string()
}

/// Checks `name` against this platform's rules without any syscall ([`shm_names`] with
/// [`NameOs::CURRENT`]).
pub fn validate_name(name: &str) -> Result<(), NameError> {
    shm_names(name, NameOs::CURRENT).map(|_| ())
}

/// The address of a function exported by the host process (e.g. an optional Node-API function
/// such as `node_api_create_external_sharedarraybuffer`), looked up at run time so that the
/// caller never links to it. `None` when the host does not export it.
pub fn runtime_symbol(name: &std::ffi::CStr) -> Option<NonNull<std::ffi::c_void>> {
    os::runtime_symbol(name)
}

/// The result of [`Region::wait`], as `Atomics.wait` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitOutcome {
    /// Woken by a notify (or, as with any futex, spuriously: re-check the value).
    Ok,
    /// The value was not `expected` when the wait began.
    NotEqual,
    /// The timeout passed.
    TimedOut,
}

impl WaitOutcome {
    /// `"ok"`, `"not-equal"` or `"timed-out"`.
    pub fn as_str(self) -> &'static str {
        match self {
            WaitOutcome::Ok => "ok",
            WaitOutcome::NotEqual => "not-equal",
            WaitOutcome::TimedOut => "timed-out",
        }
    }
}

/// An open named shared-memory segment (an OS handle; no mapping yet).
pub struct Segment {
    inner: os::Segment,
    access: Access,
    created: bool,
}

impl Segment {
    /// Opens an existing segment; never creates one. On macOS a name without a leading `/`
    /// opens the object of exactly that name, or, if there is none, the one named `/` + name.
    pub fn open(name: &str, access: Access) -> Result<Segment, Error> {
        let inner = os::Segment::open(name, access)?;
        Ok(Segment {
            inner,
            access,
            created: false,
        })
    }

    /// Creates a segment of `len` bytes (zero-filled) and opens it read-write.
    ///
    /// With `exclusive: false` an existing segment of at least `len` bytes is opened instead
    /// (it is never shrunk or grown). On macOS the object is the name exactly as given, with or
    /// without a leading `/` (no fallback as in [`open`](Self::open)).
    pub fn create(name: &str, len: u64, options: CreateOptions) -> Result<Segment, Error> {
        if len == 0 {
            return Err(Error::Empty);
        }
        let (inner, created) = os::Segment::create(name, len, options)?;
        Ok(Segment {
            inner,
            access: Access::ReadWrite,
            created,
        })
    }

    /// Removes the name. Existing handles and mappings stay valid. `Ok(false)` when no segment
    /// had that name. On Windows a name lives exactly as long as some handle to it does, so this
    /// only reports whether the name currently exists. On macOS it removes the object of exactly
    /// the name given (`x` never removes `/x`).
    pub fn unlink(name: &str) -> Result<bool, Error> {
        os::unlink(name)
    }

    /// Whether [`create`](Self::create) made this segment (`false` when it opened an existing
    /// one, and for [`open`](Self::open)). A caller that fails to use a segment it just created
    /// can [`unlink`](Self::unlink) it so that no half-made name is left behind.
    pub fn created(&self) -> bool {
        self.created
    }

    /// The access this segment was opened with.
    pub fn access(&self) -> Access {
        self.access
    }

    /// The segment's current size in bytes (`fstat` on Unix; the size of a whole view,
    /// rounded up to pages, on Windows).
    pub fn size(&self) -> Result<u64, Error> {
        self.inner.size()
    }

    /// Reads up to `buf.len()` bytes at `offset` through the handle, not through a mapping
    /// (`pread`; fewer bytes at the end of the segment, 0 past it): a page nobody wrote reads
    /// as zeros without being allocated. `None` where the OS cannot read shared memory so
    /// (macOS, Windows).
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> Option<Result<usize, Error>> {
        self.inner.read_at(offset, buf)
    }

    /// Has the OS allocate the pages of `offset..offset + len` now, without changing the size
    /// (Linux `fallocate(FALLOC_FL_KEEP_SIZE)`): fails with `ENOSPC`/`ENOMEM` when a full tmpfs
    /// or the memory limit cannot provide them. `None` where the OS has no such call.
    pub fn provide(&self, offset: u64, len: u64) -> Option<Result<(), Error>> {
        self.inner.provide(offset, len)
    }

    /// Maps the first `len` bytes, or the whole segment when `len` is `None`, shared with every
    /// other process: read-write, or truly read-only (any write through it would fault) for a
    /// segment opened [`Access::ReadOnly`].
    ///
    /// Fails with [`Error::TooLarge`] rather than mapping past the end of the segment, and
    /// with [`Error::Empty`] for a 0-byte segment.
    ///
    /// # Safety
    /// While the [`Mapping`] lives, the segment must not be truncated below `len` bytes (by any
    /// process), or reading or writing the bytes past the new end raises `SIGBUS`. The bytes
    /// may change at any time (other processes): read them only through the copies and
    /// atomics this crate offers or through raw pointers, never through references.
    pub unsafe fn map(&self, len: Option<u64>) -> Result<Mapping, Error> {
        let len = self.checked_len(len)?;
        let inner = self.inner.map(len, self.access)?;
        Ok(Mapping {
            inner,
            len,
            access: self.access,
        })
    }

    /// Maps `len` bytes (or all) as a private copy-on-write view: it shows the segment's bytes
    /// (and the peers' later writes to pages this process has not written), and a write
    /// through it changes only this process's copy of that page, never the segment, and never
    /// faults. This is how a read-only segment is handed to code that may write (JavaScript).
    /// macOS refuses such views of shared memory (`Err` there, without a syscall).
    ///
    /// # Safety
    /// As for [`map`](Self::map).
    pub unsafe fn map_copy_on_write(&self, len: Option<u64>) -> Result<Mapping, Error> {
        let len = self.checked_len(len)?;
        let inner = self.inner.map_copy_on_write(len)?;
        Ok(Mapping {
            inner,
            len,
            access: Access::ReadOnly,
        })
    }

    fn checked_len(&self, len: Option<u64>) -> Result<usize, Error> {
        let size = self.size()?;
        let len = match len {
            None => size,
            Some(l) if l > size => {
                return Err(Error::TooLarge { requested: l, size });
            }
            Some(l) => l,
        };
        if len == 0 {
            return Err(Error::Empty);
        }
        usize::try_from(len).map_err(|_| Error::TooLarge {
            requested: len,
            size,
        })
    }
}

impl fmt::Debug for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Segment")
            .field("access", &self.access)
            .finish_non_exhaustive()
    }
}

/// One mapping of a segment into this process. Dropping it unmaps.
pub struct Mapping {
    inner: os::Mapping,
    len: usize,
    access: Access,
}

// SAFETY: a Mapping is a pointer to memory that stays mapped for the Mapping's whole life and
// is only ever unmapped by its own Drop; the memory is shared with other processes anyway, so
// handing the pointer to another thread adds no new aliasing. All reads and writes through it
// go through raw-pointer copies or atomics, never through `&`/`&mut` references to the bytes.
unsafe impl Send for Mapping {}
// SAFETY: see `Send`; `&Mapping` exposes only the pointer, the length and atomic access.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Start of the mapped bytes. Valid for [`len`](Self::len) bytes while `self` lives.
    pub fn as_ptr(&self) -> NonNull<u8> {
        self.inner.ptr()
    }

    /// Number of bytes mapped.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always `false`: a mapping is never empty.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The access the mapping was made with.
    pub fn access(&self) -> Access {
        self.access
    }

    /// Whether writing through [`as_ptr`](Self::as_ptr) is allowed: for read-write mappings
    /// (the write is shared) and copy-on-write views (the write stays private).
    pub fn local_writes_allowed(&self) -> bool {
        self.access == Access::ReadWrite || self.inner.copy_on_write()
    }

    /// Copies `dst.len()` bytes starting at `offset` out of the mapping.
    ///
    /// # Panics
    /// If the range is outside the mapping.
    pub fn read(&self, offset: usize, dst: &mut [u8]) {
        let end = offset.checked_add(dst.len()).expect("range overflows");
        assert!(end <= self.len, "read past the end of the mapping");
        // SAFETY: `offset..end` lies inside the mapping (checked above), which stays mapped while
        // `self` lives and, by the contract of `Segment::map`, stays backed by the segment;
        // `dst` is a distinct Rust buffer, so the ranges cannot overlap. A peer's concurrent
        // write can only tear the copied bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.as_ptr().as_ptr().add(offset),
                dst.as_mut_ptr(),
                dst.len(),
            )
        }
    }

    /// Copies `src` into the mapping at `offset`.
    ///
    /// # Panics
    /// If the range is outside the mapping or the mapping is read-only.
    pub fn write(&self, offset: usize, src: &[u8]) {
        assert!(
            self.access == Access::ReadWrite,
            "write to a read-only mapping"
        );
        let end = offset.checked_add(src.len()).expect("range overflows");
        assert!(end <= self.len, "write past the end of the mapping");
        // SAFETY: `offset..end` lies inside the mapping (checked above) and the mapping is
        // writable and shared (read-write access); `src` is a distinct Rust buffer.
        unsafe {
            std::ptr::copy_nonoverlapping(
                src.as_ptr(),
                self.as_ptr().as_ptr().add(offset),
                src.len(),
            )
        }
    }
}

impl fmt::Debug for Mapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mapping")
            .field("ptr", &self.as_ptr())
            .field("len", &self.len)
            .field("access", &self.access)
            .finish()
    }
}

#[cfg(test)]
mod tests;
