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

use crate::{Access, CreateOptions, Error, NameError};

/// A file-mapping object never changes size after creation.
pub(crate) const SEGMENTS_CAN_SHRINK: bool = false;

/// Object names are limited like paths; counted in UTF-16 units.
const NAME_MAX: usize = 260;

/// Validates `name` and returns it as NUL-terminated UTF-16, exactly as given otherwise
/// (`Local\` / `Global\` prefixes are the caller's choice).
pub(crate) fn validate_name(name: &str) -> Result<Vec<u16>, NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.contains('\0') {
        return Err(NameError::Nul);
    }
    let mut wide: Vec<u16> = name.encode_utf16().collect();
    if wide.len() > NAME_MAX {
        return Err(NameError::TooLong {
            len: wide.len(),
            max: NAME_MAX,
            platform: "Windows (MAX_PATH, in UTF-16 units)",
        });
    }
    wide.push(0);
    Ok(wide)
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
        let wide = validate_name(name).map_err(Error::Name)?;
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
        let wide = validate_name(name).map_err(Error::Name)?;
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
    let wide = validate_name(name).map_err(Error::Name)?;
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

pub(crate) fn error_code(err: &io::Error) -> &'static str {
    match err.raw_os_error() {
        Some(2) | Some(3) => "ENOENT", // ERROR_FILE_NOT_FOUND, ERROR_PATH_NOT_FOUND
        Some(5) => "EACCES",           // ERROR_ACCESS_DENIED
        Some(6) => "EBADF",            // ERROR_INVALID_HANDLE
        Some(8) | Some(14) | Some(1455) => "ENOMEM", // NOT_ENOUGH_MEMORY, OUTOFMEMORY, COMMITMENT_LIMIT
        Some(80) | Some(183) => "EEXIST",            // ERROR_FILE_EXISTS, ERROR_ALREADY_EXISTS
        Some(87) | Some(123) => "EINVAL",            // ERROR_INVALID_PARAMETER, ERROR_INVALID_NAME
        Some(112) => "ENOSPC",                       // ERROR_DISK_FULL
        Some(206) => "ENAMETOOLONG",                 // ERROR_FILENAME_EXCED_RANGE
        Some(1006) => "EBUSY",                       // ERROR_FILE_INVALID (object changed under us)
        _ => "UNKNOWN",
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
