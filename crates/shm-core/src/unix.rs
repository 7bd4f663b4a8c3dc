//! POSIX shared memory (Linux, macOS, other Unix): `shm_open`, `fstat`, `ftruncate`, `mmap`.

use std::ffi::{c_char, c_void, CStr, CString};
use std::io;
use std::os::fd::OwnedFd;
use std::ptr::NonNull;

use rustix::fs::Mode;
use rustix::io::Errno;
use rustix::mm::{MapFlags, ProtFlags};
use rustix::shm::OFlags;

use crate::{Access, CreateOptions, Error, NameError};

/// A peer can `ftruncate` a POSIX segment smaller while we have it mapped.
pub(crate) const SEGMENTS_CAN_SHRINK: bool = true;

/// The longest name the OS accepts, counted in bytes *with* the leading `/`, and the rule's name.
#[cfg(target_os = "macos")]
const NAME_MAX: (usize, &str) = (31, "macOS (PSHMNAMLEN, counting the leading '/')");
/// glibc's `shm_open` (what C and Python peers use) takes at most 254 bytes after the `/`.
#[cfg(not(target_os = "macos"))]
const NAME_MAX: (usize, &str) = (255, "Linux (shm_open, counting the leading '/')");

/// Validates `name` and returns the form `shm_open` takes: one leading `/`, then no `/`.
pub(crate) fn validate_name(name: &str) -> Result<CString, NameError> {
    let bare = name.strip_prefix('/').unwrap_or(name);
    if bare.is_empty() {
        return Err(NameError::Empty);
    }
    if bare.contains('\0') {
        return Err(NameError::Nul);
    }
    if bare.contains('/') {
        return Err(NameError::Slash);
    }
    let len = bare.len() + 1;
    if len > NAME_MAX.0 {
        return Err(NameError::TooLong {
            len,
            max: NAME_MAX.0,
            platform: NAME_MAX.1,
        });
    }
    let mut bytes = Vec::with_capacity(len + 1);
    bytes.push(b'/');
    bytes.extend_from_slice(bare.as_bytes());
    // The NUL check above makes this infallible.
    Ok(CString::new(bytes).expect("no interior NUL"))
}

fn os_err(syscall: &'static str) -> impl FnOnce(Errno) -> Error {
    move |e| Error::os(syscall, io::Error::from(e))
}

pub(crate) struct Segment {
    fd: OwnedFd,
}

impl Segment {
    pub(crate) fn open(name: &str, access: Access) -> Result<Segment, Error> {
        let path = validate_name(name).map_err(Error::Name)?;
        let flags = match access {
            Access::ReadOnly => OFlags::RDONLY,
            Access::ReadWrite => OFlags::RDWR,
        };
        let fd =
            rustix::shm::open(path.as_c_str(), flags, Mode::empty()).map_err(os_err("shm_open"))?;
        Ok(Segment { fd })
    }

    /// Returns the segment and whether this call created it (rather than opening an existing one).
    pub(crate) fn create(
        name: &str,
        len: u64,
        options: CreateOptions,
    ) -> Result<(Segment, bool), Error> {
        let path = validate_name(name).map_err(Error::Name)?;
        let mode = Mode::from_bits_truncate(options.mode as _);
        let size =
            i64::try_from(len).map_err(|_| Error::os("ftruncate", io::Error::from(Errno::FBIG)))?;
        // Try to create it ourselves first, so that we only ever size a segment we made.
        // A non-exclusive create that finds the name taken opens that segment instead; should
        // it vanish between the two calls (a peer unlinked it), try again a few times.
        for _ in 0..8 {
            match rustix::shm::open(
                path.as_c_str(),
                OFlags::RDWR | OFlags::CREATE | OFlags::EXCL,
                mode,
            ) {
                Ok(fd) => {
                    if let Err(e) = rustix::fs::ftruncate(&fd, size as u64) {
                        // Do not leave a 0-byte segment behind under our name.
                        let _ = rustix::shm::unlink(path.as_c_str());
                        return Err(os_err("ftruncate")(e));
                    }
                    return Ok((Segment { fd }, true));
                }
                Err(Errno::EXIST) if !options.exclusive => {}
                Err(e) => return Err(os_err("shm_open")(e)),
            }
            let fd = match rustix::shm::open(path.as_c_str(), OFlags::RDWR, Mode::empty()) {
                Ok(fd) => fd,
                Err(Errno::NOENT) => continue,
                Err(e) => return Err(os_err("shm_open")(e)),
            };
            let segment = Segment { fd };
            let existing = segment.size()?;
            if existing == 0 {
                // Created by a peer that has not sized it yet: sizing it is what that peer is
                // about to do. Only ever grow.
                rustix::fs::ftruncate(&segment.fd, size as u64).map_err(os_err("ftruncate"))?;
            } else if existing < len {
                return Err(Error::ExistingTooSmall {
                    requested: len,
                    size: existing,
                });
            }
            return Ok((segment, false));
        }
        Err(os_err("shm_open")(Errno::NOENT))
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

pub(crate) fn unlink(name: &str) -> Result<bool, Error> {
    let path = validate_name(name).map_err(Error::Name)?;
    match rustix::shm::unlink(path.as_c_str()) {
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
