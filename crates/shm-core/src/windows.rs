//! Named file mappings on Windows: `OpenFileMappingW` / `CreateFileMappingW` (pagefile-backed),
//! `MapViewOfFile`, `VirtualQuery`.
//!
//! A mapping object lives as long as some handle or view of it does; there is no separate name
//! to remove, so `unlink` only reports whether the name exists (see the README).

use std::ffi::{c_void, CStr};
use std::io;
use std::ptr::NonNull;

use windows_sys::Win32::Foundation::{
    CloseHandle, GetLastError, ERROR_ALREADY_EXISTS, HANDLE, INVALID_HANDLE_VALUE,
};
use windows_sys::Win32::System::LibraryLoader::{GetModuleHandleW, GetProcAddress};
use windows_sys::Win32::System::Memory::{
    CreateFileMappingW, MapViewOfFile, OpenFileMappingW, UnmapViewOfFile, VirtualQuery,
    FILE_MAP_COPY, FILE_MAP_READ, FILE_MAP_WRITE, MEMORY_BASIC_INFORMATION,
    MEMORY_MAPPED_VIEW_ADDRESS, PAGE_READWRITE,
};

use crate::names::{shm_names, NameOs};
use crate::{Access, CreateOptions, Error};

/// A file-mapping object never changes size after creation.
pub(crate) const SEGMENTS_CAN_SHRINK: bool = false;

/// Validates `name` ([`shm_names`]) and returns it as NUL-terminated UTF-16, exactly as given
/// otherwise (`Local\` / `Global\` prefixes are the caller's choice).
fn wide_name(name: &str) -> Result<Vec<u16>, Error> {
    let names = shm_names(name, NameOs::Windows).map_err(Error::Name)?;
    Ok(names
        .exact
        .encode_utf16()
        .chain(std::iter::once(0))
        .collect())
}

fn last_error(syscall: &'static str) -> Error {
    Error::os(syscall, io::Error::last_os_error())
}

pub(crate) struct Segment {
    handle: HANDLE,
}

// SAFETY: a file-mapping HANDLE may be used and closed from any thread.
unsafe impl Send for Segment {}
// SAFETY: `&Segment` only maps views and queries; both are thread-safe kernel calls.
unsafe impl Sync for Segment {}

impl Segment {
    pub(crate) fn open(name: &str, access: Access) -> Result<Segment, Error> {
        let wide = wide_name(name)?;
        let desired = match access {
            Access::ReadOnly => FILE_MAP_READ,
            Access::ReadWrite => FILE_MAP_READ | FILE_MAP_WRITE,
        };
        // SAFETY: `wide` is NUL-terminated UTF-16 that outlives the call.
        let handle = unsafe { OpenFileMappingW(desired, 0, wide.as_ptr()) };
        if handle.is_null() {
            return Err(last_error("OpenFileMappingW"));
        }
        Ok(Segment { handle })
    }

    /// Returns the segment and whether this call created it (rather than opening an existing one).
    pub(crate) fn create(
        name: &str,
        len: u64,
        options: CreateOptions,
    ) -> Result<(Segment, bool), Error> {
        let wide = wide_name(name)?;
        // SAFETY: INVALID_HANDLE_VALUE asks for a pagefile-backed mapping; default security;
        // `wide` is NUL-terminated and outlives the call.
        let handle = unsafe {
            CreateFileMappingW(
                INVALID_HANDLE_VALUE,
                std::ptr::null(),
                PAGE_READWRITE,
                (len >> 32) as u32,
                len as u32,
                wide.as_ptr(),
            )
        };
        if handle.is_null() {
            return Err(last_error("CreateFileMappingW"));
        }
        // SAFETY: reads this thread's last-error value, set by the call just above.
        let existed = unsafe { GetLastError() } == ERROR_ALREADY_EXISTS;
        let segment = Segment { handle };
        if existed {
            if options.exclusive {
                return Err(Error::os(
                    "CreateFileMappingW",
                    io::Error::from_raw_os_error(ERROR_ALREADY_EXISTS as i32),
                ));
            }
            let size = segment.size()?;
            if size < len {
                return Err(Error::ExistingTooSmall {
                    requested: len,
                    size,
                });
            }
        }
        Ok((segment, !existed))
    }

    /// No way to ask for a view's pages up front: `None`.
    pub(crate) fn provide(&self, _offset: u64, _len: u64) -> Option<Result<(), Error>> {
        None
    }

    /// Reading a mapping object as a file is not possible: `None` (callers read the mapping).
    pub(crate) fn read_at(&self, _offset: u64, _buf: &mut [u8]) -> Option<Result<usize, Error>> {
        None
    }

    /// Windows keeps no exact size for a mapping object; a whole view's region size is the size
    /// rounded up to whole pages.
    pub(crate) fn size(&self) -> Result<u64, Error> {
        // SAFETY: maps a read view of the whole object; unmapped again below.
        let view = unsafe { MapViewOfFile(self.handle, FILE_MAP_READ, 0, 0, 0) };
        if view.Value.is_null() {
            return Err(last_error("MapViewOfFile"));
        }
        // SAFETY: all-zero is a valid MEMORY_BASIC_INFORMATION (plain integers and pointers).
        let mut info: MEMORY_BASIC_INFORMATION = unsafe { std::mem::zeroed() };
        // SAFETY: `view.Value` is a live view; `info` is a properly sized out-buffer.
        let n = unsafe {
            VirtualQuery(
                view.Value,
                &mut info,
                std::mem::size_of::<MEMORY_BASIC_INFORMATION>(),
            )
        };
        let err = (n == 0).then(|| last_error("VirtualQuery"));
        // SAFETY: `view` came from MapViewOfFile above and is not used after this.
        unsafe { UnmapViewOfFile(view) };
        match err {
            Some(e) => Err(e),
            None => Ok(info.RegionSize as u64),
        }
    }

    /// A shared view: read-write, or read-only (`FILE_MAP_READ`) for read-only handles.
    pub(crate) fn map(&self, len: usize, access: Access) -> Result<Mapping, Error> {
        let desired = match access {
            Access::ReadWrite => FILE_MAP_READ | FILE_MAP_WRITE,
            Access::ReadOnly => FILE_MAP_READ,
        };
        self.view(len, desired, false)
    }

    /// A copy-on-write view (`FILE_MAP_COPY`): local writes land in private pages (see unix.rs).
    pub(crate) fn map_copy_on_write(&self, len: usize) -> Result<Mapping, Error> {
        self.view(len, FILE_MAP_COPY, true)
    }

    fn view(&self, len: usize, desired: u32, copy_on_write: bool) -> Result<Mapping, Error> {
        // SAFETY: a new view chosen by the system, no larger than the object (checked by
        // `crate::Segment::map`); the handle was opened with the access `desired` needs.
        let view = unsafe { MapViewOfFile(self.handle, desired, 0, 0, len) };
        let ptr =
            NonNull::new(view.Value.cast::<u8>()).ok_or_else(|| last_error("MapViewOfFile"))?;
        Ok(Mapping { ptr, copy_on_write })
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        // SAFETY: the handle came from Open/CreateFileMappingW and is closed exactly once.
        unsafe { CloseHandle(self.handle) };
    }
}

pub(crate) fn unlink(name: &str) -> Result<bool, Error> {
    let wide = wide_name(name)?;
    // SAFETY: as in `Segment::open`.
    let handle = unsafe { OpenFileMappingW(FILE_MAP_READ, 0, wide.as_ptr()) };
    if handle.is_null() {
        let err = io::Error::last_os_error();
        return match error_code(&err) {
            "ENOENT" => Ok(false),
            _ => Err(Error::os("OpenFileMappingW", err)),
        };
    }
    // SAFETY: closes the handle we just opened.
    unsafe { CloseHandle(handle) };
    Ok(true)
}

pub(crate) struct Mapping {
    ptr: NonNull<u8>,
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
        let view = MEMORY_MAPPED_VIEW_ADDRESS {
            Value: self.ptr.as_ptr().cast::<c_void>(),
        };
        // SAFETY: the address MapViewOfFile returned, unmapped exactly once.
        unsafe { UnmapViewOfFile(view) };
    }
}

/// The Node-style code of an OS error, as Node's `fs` reports it on Windows: libuv's
/// `uv_translate_sys_error` (libuv `src/win/error.c`, every non-socket Win32 code it names; the
/// `WSA*` codes cannot come from the calls made here). A code libuv does not name is `UNKNOWN`,
/// as in Node. Notably `ERROR_INVALID_NAME` is `ENOENT` (not `EINVAL`), like libuv.
pub(crate) fn error_code(err: &io::Error) -> &'static str {
    match err.raw_os_error() {
        Some(code) => win32_code(code as u32),
        None => "UNKNOWN",
    }
}

fn win32_code(code: u32) -> &'static str {
    use windows_sys::Win32::Foundation as F;
    match code {
        F::ERROR_NOACCESS
        | F::ERROR_ELEVATION_REQUIRED
        | F::ERROR_CANT_ACCESS_FILE
        | F::ERROR_ACCESS_DENIED => "EACCES",
        F::ERROR_ADDRESS_ALREADY_ASSOCIATED => "EADDRINUSE",
        F::ERROR_INVALID_FLAGS | F::ERROR_INVALID_HANDLE => "EBADF",
        F::ERROR_LOCK_VIOLATION | F::ERROR_PIPE_BUSY | F::ERROR_SHARING_VIOLATION => "EBUSY",
        F::ERROR_OPERATION_ABORTED => "ECANCELED",
        F::ERROR_NO_UNICODE_TRANSLATION => "ECHARSET",
        F::ERROR_CONNECTION_ABORTED => "ECONNABORTED",
        F::ERROR_CONNECTION_REFUSED => "ECONNREFUSED",
        F::ERROR_NETNAME_DELETED => "ECONNRESET",
        F::ERROR_ALREADY_EXISTS | F::ERROR_FILE_EXISTS => "EEXIST",
        F::ERROR_BUFFER_OVERFLOW => "EFAULT",
        F::ERROR_HOST_UNREACHABLE => "EHOSTUNREACH",
        F::ERROR_INSUFFICIENT_BUFFER
        | F::ERROR_INVALID_DATA
        | F::ERROR_INVALID_PARAMETER
        | F::ERROR_SYMLINK_NOT_SUPPORTED => "EINVAL",
        F::ERROR_BEGINNING_OF_MEDIA
        | F::ERROR_BUS_RESET
        | F::ERROR_CRC
        | F::ERROR_DEVICE_DOOR_OPEN
        | F::ERROR_DEVICE_REQUIRES_CLEANING
        | F::ERROR_DISK_CORRUPT
        | F::ERROR_EOM_OVERFLOW
        | F::ERROR_FILEMARK_DETECTED
        | F::ERROR_GEN_FAILURE
        | F::ERROR_INVALID_BLOCK_LENGTH
        | F::ERROR_IO_DEVICE
        | F::ERROR_NO_DATA_DETECTED
        | F::ERROR_NO_SIGNAL_SENT
        | F::ERROR_OPEN_FAILED
        | F::ERROR_SETMARK_DETECTED
        | F::ERROR_SIGNAL_REFUSED => "EIO",
        F::ERROR_CANT_RESOLVE_FILENAME => "ELOOP",
        F::ERROR_TOO_MANY_OPEN_FILES => "EMFILE",
        F::ERROR_FILENAME_EXCED_RANGE => "ENAMETOOLONG",
        F::ERROR_NETWORK_UNREACHABLE => "ENETUNREACH",
        F::ERROR_BAD_PATHNAME
        | F::ERROR_DIRECTORY
        | F::ERROR_ENVVAR_NOT_FOUND
        | F::ERROR_FILE_NOT_FOUND
        | F::ERROR_INVALID_NAME
        | F::ERROR_INVALID_DRIVE
        | F::ERROR_INVALID_REPARSE_DATA
        | F::ERROR_MOD_NOT_FOUND
        | F::ERROR_PATH_NOT_FOUND => "ENOENT",
        F::ERROR_NOT_ENOUGH_MEMORY | F::ERROR_OUTOFMEMORY => "ENOMEM",
        F::ERROR_CANNOT_MAKE
        | F::ERROR_DISK_FULL
        | F::ERROR_EA_TABLE_FULL
        | F::ERROR_END_OF_MEDIA
        | F::ERROR_HANDLE_DISK_FULL => "ENOSPC",
        F::ERROR_NOT_CONNECTED => "ENOTCONN",
        F::ERROR_DIR_NOT_EMPTY => "ENOTEMPTY",
        F::ERROR_NOT_SUPPORTED => "ENOTSUP",
        F::ERROR_BROKEN_PIPE => "EOF",
        F::ERROR_PRIVILEGE_NOT_HELD => "EPERM",
        F::ERROR_BAD_PIPE | F::ERROR_NO_DATA | F::ERROR_PIPE_NOT_CONNECTED => "EPIPE",
        F::ERROR_WRITE_PROTECT => "EROFS",
        F::ERROR_SEM_TIMEOUT => "ETIMEDOUT",
        F::ERROR_NOT_SAME_DEVICE => "EXDEV",
        F::ERROR_INVALID_FUNCTION => "EISDIR",
        F::ERROR_META_EXPANSION_TOO_LONG => "E2BIG",
        _ => "UNKNOWN",
    }
}

/// Node's `errno` for an OS error on Windows: libuv's own negative number for the code
/// (`include/uv/errno.h`, the `_WIN32` branch), e.g. `ENOENT` → -4058, not minus the Win32 code.
pub(crate) fn error_errno(err: &io::Error) -> i32 {
    match error_code(err) {
        "E2BIG" => -4093,
        "EACCES" => -4092,
        "EADDRINUSE" => -4091,
        "EBADF" => -4083,
        "EBUSY" => -4082,
        "ECANCELED" => -4081,
        "ECHARSET" => -4080,
        "ECONNABORTED" => -4079,
        "ECONNREFUSED" => -4078,
        "ECONNRESET" => -4077,
        "EEXIST" => -4075,
        "EFAULT" => -4074,
        "EHOSTUNREACH" => -4073,
        "EINVAL" => -4071,
        "EIO" => -4070,
        "EISDIR" => -4068,
        "ELOOP" => -4067,
        "EMFILE" => -4066,
        "ENAMETOOLONG" => -4064,
        "ENETUNREACH" => -4062,
        "ENOENT" => -4058,
        "ENOMEM" => -4057,
        "ENOSPC" => -4055,
        "ENOTCONN" => -4053,
        "ENOTEMPTY" => -4051,
        "ENOTSUP" => -4049,
        "EPERM" => -4048,
        "EPIPE" => -4047,
        "EROFS" => -4043,
        "ETIMEDOUT" => -4039,
        "EXDEV" => -4037,
        "EOF" => -4095,
        _ => -4094, // UV_UNKNOWN
    }
}

pub(crate) fn runtime_symbol(name: &CStr) -> Option<NonNull<c_void>> {
    // SAFETY: a null module name means the host executable (node.exe / electron.exe), which
    // exports the Node-API functions; `name` is NUL-terminated. The address is not called here.
    unsafe {
        let module = GetModuleHandleW(std::ptr::null());
        if module.is_null() {
            return None;
        }
        GetProcAddress(module, name.as_ptr().cast()).and_then(|f| NonNull::new(f as *mut c_void))
    }
}
