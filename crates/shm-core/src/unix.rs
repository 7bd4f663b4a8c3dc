//! POSIX shared memory (Linux, macOS, other Unix): `shm_open`, `fstat`, `ftruncate`, `mmap`.
//!
//! `/dev/shm` is world-writable, so anything can sit under a name: a symlink to a file of the
//! victim's, a FIFO, a directory. Every open therefore refuses to follow a symlink (`O_NOFOLLOW`,
//! as glibc's `shm_open` does), never blocks (`O_NONBLOCK`: a FIFO would), never becomes a
//! controlling terminal (`O_NOCTTY`), is not inherited by children (`O_CLOEXEC`), and keeps the
//! descriptor only if `fstat` says it is a regular file.

use std::ffi::{c_char, c_void, CStr, CString};
use std::io;
use std::os::fd::OwnedFd;
use std::ptr::NonNull;

use rustix::fs::Mode;
use rustix::io::Errno;
use rustix::mm::{MapFlags, ProtFlags};

use crate::names::{shm_names, NameOs, ShmNames};
use crate::{Access, CreateOptions, Error};

/// A peer can `ftruncate` a POSIX segment smaller while we have it mapped, except on macOS,
/// where xnu refuses to resize a shared-memory object once it has a size (`pshm_truncate`).
#[cfg(not(target_os = "macos"))]
pub(crate) const SEGMENTS_CAN_SHRINK: bool = true;
#[cfg(target_os = "macos")]
pub(crate) const SEGMENTS_CAN_SHRINK: bool = false;

/// Whether the OS maps a shared-memory object `MAP_PRIVATE` (copy-on-write). xnu refuses
/// (`pshm_mmap` requires `MAP_SHARED`), so on macOS a `READ` instance cannot get a private view
/// and the binding runs it caged; no `mmap` is attempted there.
#[cfg(not(target_os = "macos"))]
const PRIVATE_SHM_MAPPINGS: bool = true;
#[cfg(target_os = "macos")]
const PRIVATE_SHM_MAPPINGS: bool = false;

/// Whether a shared-memory descriptor can be read like a file (`pread`). Linux's tmpfs reads
/// a hole as zeros without allocating a page; xnu's shared-memory objects cannot be read.
#[cfg(not(target_os = "macos"))]
const SHM_PREAD: bool = true;
#[cfg(target_os = "macos")]
const SHM_PREAD: bool = false;

#[cfg(target_os = "linux")]
fn provide(fd: &OwnedFd, offset: u64, len: u64) -> Option<Result<(), Error>> {
    let keep = rustix::fs::FallocateFlags::KEEP_SIZE;
    Some(rustix::fs::fallocate(fd, keep, offset, len).map_err(os_err("fallocate")))
}
#[cfg(not(target_os = "linux"))]
fn provide(_fd: &OwnedFd, _offset: u64, _len: u64) -> Option<Result<(), Error>> {
    None
}

/// The name as `shm_open` takes it (a name from [`shm_names`] holds no NUL).
fn c_name(name: &str) -> CString {
    CString::new(name).expect("no interior NUL")
}

/// The object name(s) `name` stands for on this OS (see `names.rs`).
fn names(name: &str) -> Result<ShmNames, Error> {
    shm_names(name, NameOs::CURRENT).map_err(Error::Name)
}

fn os_err(syscall: &'static str) -> impl FnOnce(Errno) -> Error {
    move |e| Error::os(syscall, io::Error::from(e))
}

/// What an open asks for.
#[derive(Clone, Copy)]
enum How {
    Open(Access),
    /// `O_CREAT | O_EXCL`, read-write, with these permission bits.
    CreateExclusive(Mode),
}

/// `shm_open` the way glibc does it (`open("/dev/shm/<name>")`; `path` is `"/<name>"`), plus
/// `O_NONBLOCK | O_NOCTTY`, keeping the descriptor only for a regular file. A symlink under the
/// name fails with `ELOOP`, a directory with `EISDIR`, a FIFO, socket or device with `EINVAL`;
/// none of them is followed, opened for I/O, or changed.
#[cfg(target_os = "linux")]
fn shm_open(path: &CStr, how: How) -> Result<OwnedFd, Error> {
    use rustix::fs::{FileType, OFlags as F};
    let full = dev_shm_path(path);
    let (flags, mode) = match how {
        How::Open(Access::ReadOnly) => (F::RDONLY, Mode::empty()),
        How::Open(Access::ReadWrite) => (F::RDWR, Mode::empty()),
        How::CreateExclusive(mode) => (F::RDWR | F::CREATE | F::EXCL, mode),
    };
    let hardening = F::NOFOLLOW | F::CLOEXEC | F::NONBLOCK | F::NOCTTY;
    let fd =
        rustix::fs::open(full.as_c_str(), flags | hardening, mode).map_err(os_err("shm_open"))?;
    let stat = rustix::fs::fstat(&fd).map_err(os_err("fstat"))?;
    match FileType::from_raw_mode(stat.st_mode) {
        FileType::RegularFile => Ok(fd),
        FileType::Directory => Err(os_err("shm_open")(Errno::ISDIR)),
        _ => Err(os_err("shm_open")(Errno::INVAL)),
    }
}

#[cfg(target_os = "linux")]
fn dev_shm_path(path: &CStr) -> CString {
    let mut full = b"/dev/shm".to_vec();
    full.extend_from_slice(path.to_bytes());
    // `path` is a C string, so it holds no NUL.
    CString::new(full).expect("no interior NUL")
}

/// `shm_unlink`: removes the name itself (a symlink under it is removed, never its target).
#[cfg(target_os = "linux")]
fn shm_unlink(path: &CStr) -> Result<(), Errno> {
    rustix::fs::unlink(dev_shm_path(path).as_c_str())
}

/// macOS: shared-memory objects live in the kernel, not in a file system, so nothing can be
/// planted under a name; `shm_open` sets `FD_CLOEXEC` itself (POSIX).
#[cfg(not(target_os = "linux"))]
fn shm_open(path: &CStr, how: How) -> Result<OwnedFd, Error> {
    use rustix::shm::OFlags;
    let (flags, mode) = match how {
        How::Open(Access::ReadOnly) => (OFlags::RDONLY, Mode::empty()),
        How::Open(Access::ReadWrite) => (OFlags::RDWR, Mode::empty()),
        How::CreateExclusive(mode) => (OFlags::RDWR | OFlags::CREATE | OFlags::EXCL, mode),
    };
    rustix::shm::open(path, flags, mode).map_err(os_err("shm_open"))
}

#[cfg(not(target_os = "linux"))]
fn shm_unlink(path: &CStr) -> Result<(), Errno> {
    rustix::shm::unlink(path)
}

/// How long a non-exclusive `create` waits for an existing 0-byte segment's creator to size it.
const SIZE_WAIT: std::time::Duration = std::time::Duration::from_millis(100);

pub(crate) struct Segment {
    fd: OwnedFd,
}

impl Segment {
    /// Opens the first of the name's candidates that exists (macOS: `x`, then `/x`).
    pub(crate) fn open(name: &str, access: Access) -> Result<Segment, Error> {
        let fd = names(name)?.open_first(|n| shm_open(&c_name(n), How::Open(access)))?;
        Ok(Segment { fd })
    }

    /// Returns the segment and whether this call created it (rather than opening an existing one).
    ///
    /// Only a segment this call created is ever sized. With `exclusive: false` an existing one
    /// is taken as it is; if it is still 0 bytes (its creator is between `shm_open` and
    /// `ftruncate`) this waits up to [`SIZE_WAIT`] for the creator to size it, then fails with
    /// [`Error::Empty`].
    pub(crate) fn create(
        name: &str,
        len: u64,
        options: CreateOptions,
    ) -> Result<(Segment, bool), Error> {
        // Exactly one object: never the open fallback.
        let path = c_name(&names(name)?.exact);
        let mode = Mode::from_bits_truncate(options.mode as _);
        if i64::try_from(len).is_err() {
            return Err(Error::os("ftruncate", io::Error::from(Errno::FBIG)));
        }
        // Should the name vanish between our exclusive attempt and the open of the existing
        // segment (a peer unlinked it), try again; a peer that creates and unlinks in a tight
        // loop can win several rounds in a row (8 were lost once under valgrind's serialized
        // threads), so give it many, yielding between them.
        for attempt in 0..64 {
            if attempt > 0 {
                std::thread::yield_now();
            }
            match shm_open(&path, How::CreateExclusive(mode)) {
                Ok(fd) => {
                    if let Err(e) = rustix::fs::ftruncate(&fd, len) {
                        // Do not leave a 0-byte segment behind under our name.
                        let _ = shm_unlink(&path);
                        return Err(os_err("ftruncate")(e));
                    }
                    return Ok((Segment { fd }, true));
                }
                Err(Error::Os { source, .. })
                    if !options.exclusive
                        && Errno::from_io_error(&source) == Some(Errno::EXIST) => {}
                Err(e) => return Err(e),
            }
            let segment = match shm_open(&path, How::Open(Access::ReadWrite)) {
                Ok(fd) => Segment { fd },
                Err(Error::Os { source, .. })
                    if Errno::from_io_error(&source) == Some(Errno::NOENT) =>
                {
                    continue
                }
                Err(e) => return Err(e),
            };
            let existing = segment.size_once_sized()?;
            if existing == 0 {
                return Err(Error::Empty);
            }
            if existing < len {
                return Err(Error::ExistingTooSmall {
                    requested: len,
                    size: existing,
                });
            }
            return Ok((segment, false));
        }
        Err(os_err("shm_open")(Errno::NOENT))
    }

    /// The size, waiting up to [`SIZE_WAIT`] (1, 2, 4 … ms apart) while it is 0.
    fn size_once_sized(&self) -> Result<u64, Error> {
        let start = std::time::Instant::now();
        let mut pause = std::time::Duration::from_millis(1);
        loop {
            let size = self.size()?;
            if size != 0 || start.elapsed() >= SIZE_WAIT {
                return Ok(size);
            }
            std::thread::sleep(pause.min(SIZE_WAIT.saturating_sub(start.elapsed())));
            pause *= 2;
        }
    }

    #[cfg(test)]
    pub(crate) fn fd_for_tests(&self) -> &OwnedFd {
        &self.fd
    }

    /// The size now. `lseek(fd, 0, SEEK_END)` where the OS supports it on shared memory
    /// (Linux: about 130 ns here, against 320 ns for `fstat`; caged copies call this every
    /// time), else `fstat` (macOS shared memory cannot seek).
    pub(crate) fn size(&self) -> Result<u64, Error> {
        if let Ok(end) = rustix::fs::seek(&self.fd, rustix::fs::SeekFrom::End(0)) {
            return Ok(end);
        }
        let stat = rustix::fs::fstat(&self.fd).map_err(os_err("fstat"))?;
        Ok(u64::try_from(stat.st_size).unwrap_or(0))
    }

    /// `pread` of up to `buf.len()` bytes at `offset` (fewer at the end of the segment, 0 past
    /// it); `None` where shared memory cannot be read as a file (see [`SHM_PREAD`]).
    pub(crate) fn read_at(&self, offset: u64, buf: &mut [u8]) -> Option<Result<usize, Error>> {
        if !SHM_PREAD {
            return None;
        }
        loop {
            match rustix::io::pread(&self.fd, &mut *buf, offset) {
                Err(Errno::INTR) => continue,
                other => return Some(other.map_err(os_err("pread"))),
            }
        }
    }

    /// Makes the OS provide the pages of `offset..offset + len` now (`fallocate` keeping the
    /// size), to learn why accesses to them fault although the segment covers them: `ENOSPC`
    /// or `ENOMEM` when it cannot. `None` where there is no such call (or it is not Linux).
    pub(crate) fn provide(&self, offset: u64, len: u64) -> Option<Result<(), Error>> {
        provide(&self.fd, offset, len)
    }

    /// A shared mapping: read-write, or truly read-only (`PROT_READ`) for read-only segments.
    pub(crate) fn map(&self, len: usize, access: Access) -> Result<Mapping, Error> {
        let prot = match access {
            Access::ReadWrite => ProtFlags::READ | ProtFlags::WRITE,
            Access::ReadOnly => ProtFlags::READ,
        };
        self.mmap(len, prot, MapFlags::SHARED, false)
    }

    /// A private, writable, copy-on-write view: reads see the shared pages (and so the
    /// peers' writes) until this process writes a page; that page then becomes a private copy.
    /// A write can therefore neither fault nor reach the segment. Works on read-only handles.
    pub(crate) fn map_copy_on_write(&self, len: usize) -> Result<Mapping, Error> {
        if !PRIVATE_SHM_MAPPINGS {
            return Err(os_err("mmap")(Errno::INVAL));
        }
        self.mmap(
            len,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::PRIVATE,
            true,
        )
    }

    fn mmap(
        &self,
        len: usize,
        prot: ProtFlags,
        flags: MapFlags,
        copy_on_write: bool,
    ) -> Result<Mapping, Error> {
        // SAFETY: a fresh mapping at an address the kernel picks (null hint), so no existing
        // Rust memory is replaced; `len` is non-zero and no larger than the segment (checked by
        // `crate::Segment::map`); the fd is open for what `prot` needs (PROT_WRITE with
        // MAP_SHARED only on read-write handles; a private mapping needs read access only).
        let ptr = unsafe { rustix::mm::mmap(std::ptr::null_mut(), len, prot, flags, &self.fd, 0) }
            .map_err(os_err("mmap"))?;
        let ptr = NonNull::new(ptr.cast::<u8>())
            .ok_or_else(|| Error::os("mmap", io::Error::from(Errno::NOMEM)))?;
        Ok(Mapping {
            ptr,
            len,
            copy_on_write,
        })
    }
}

/// Removes exactly the name's one object (macOS: `x` never removes `/x`).
pub(crate) fn unlink(name: &str) -> Result<bool, Error> {
    let path = c_name(&names(name)?.exact);
    match shm_unlink(&path) {
        Ok(()) => Ok(true),
        Err(Errno::NOENT) => Ok(false),
        Err(e) => Err(os_err("shm_unlink")(e)),
    }
}

pub(crate) struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
    copy_on_write: bool,
}

impl Mapping {
    pub(crate) fn ptr(&self) -> NonNull<u8> {
        self.ptr
    }

    pub(crate) fn copy_on_write(&self) -> bool {
        self.copy_on_write
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly what `mmap` returned, and this Drop runs once; the
        // owning `crate::Mapping`/`Region` guarantee nothing uses the bytes afterwards.
        let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// Node's `errno` on Unix: minus the OS errno.
pub(crate) fn error_errno(err: &io::Error) -> i32 {
    -err.raw_os_error().unwrap_or(0)
}

pub(crate) fn error_code(err: &io::Error) -> &'static str {
    let Some(errno) = Errno::from_io_error(err) else {
        return "UNKNOWN";
    };
    match errno {
        Errno::NOENT => "ENOENT",
        Errno::ACCESS => "EACCES",
        Errno::PERM => "EPERM",
        Errno::EXIST => "EEXIST",
        Errno::INVAL => "EINVAL",
        Errno::NAMETOOLONG => "ENAMETOOLONG",
        Errno::MFILE => "EMFILE",
        Errno::NFILE => "ENFILE",
        Errno::NOMEM => "ENOMEM",
        Errno::NOSPC => "ENOSPC",
        Errno::FAULT => "EFAULT",
        Errno::BUSY => "EBUSY",
        Errno::NOTSUP => "ENOTSUP",
        Errno::OVERFLOW => "EOVERFLOW",
        Errno::INTR => "EINTR",
        Errno::AGAIN => "EAGAIN",
        Errno::TIMEDOUT => "ETIMEDOUT",
        Errno::NOSYS => "ENOSYS",
        Errno::FBIG => "EFBIG",
        Errno::BADF => "EBADF",
        Errno::NODEV => "ENODEV",
        Errno::ROFS => "EROFS",
        Errno::LOOP => "ELOOP",
        Errno::ISDIR => "EISDIR",
        Errno::NOTDIR => "ENOTDIR",
        Errno::NXIO => "ENXIO",
        _ => "UNKNOWN",
    }
}

extern "C" {
    fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
}
#[cfg(target_os = "macos")]
const RTLD_DEFAULT: *mut c_void = -2isize as *mut c_void;
#[cfg(not(target_os = "macos"))]
const RTLD_DEFAULT: *mut c_void = std::ptr::null_mut();

pub(crate) fn runtime_symbol(name: &CStr) -> Option<NonNull<c_void>> {
    // SAFETY: RTLD_DEFAULT searches the images already loaded (the host executable included);
    // `name` is NUL-terminated; the result is only an address, not called here.
    NonNull::new(unsafe { dlsym(RTLD_DEFAULT, name.as_ptr()) })
}
