//! JS errors shaped like Node's: `TypeError`/`RangeError` with `code`, and `SystemError`-like
//! `Error`s with `code`, `errno`, `syscall` and `path`.
//!
//! Every helper builds the error object itself, throws it, and returns a napi-rs error tagged
//! `PendingException`, which napi-rs then leaves alone (it does not throw a second error).

use std::ffi::c_char;
use std::ptr;

use napi::{sys, Error, Result, Status};
use shm_core::RegionError;

/// Which JS constructor an error uses.
#[derive(Clone, Copy)]
pub enum Kind {
    Error,
    Type,
    Range,
}

/// An error not yet turned into a JS value: can cross threads (for `waitAsync`).
pub struct JsErr {
    pub kind: Kind,
    pub code: &'static str,
    pub message: String,
    /// `(errno, syscall, path)` for system errors.
    pub system: Option<(i32, String, String)>,
}

impl JsErr {
    pub fn new(kind: Kind, code: &'static str, message: impl Into<String>) -> Self {
        JsErr {
            kind,
            code,
            message: message.into(),
            system: None,
        }
    }

    /// Builds the JS error object.
    ///
    /// # Safety
    /// `env` must be the current, live environment on its JS thread.
    pub unsafe fn to_value(&self, env: sys::napi_env) -> sys::napi_value {
        let code = js_string(env, self.code);
        let msg = js_string(env, &self.message);
        let mut err = ptr::null_mut();
        // SAFETY: env is live (caller); code/msg are string values made just above.
        unsafe {
            match self.kind {
                Kind::Error => sys::napi_create_error(env, code, msg, &mut err),
                Kind::Type => sys::napi_create_type_error(env, code, msg, &mut err),
                Kind::Range => sys::napi_create_range_error(env, code, msg, &mut err),
            };
        }
        if let Some((errno, syscall, path)) = &self.system {
            let mut n = ptr::null_mut();
            // SAFETY: env is live; `err` is the object created above (or null if creation
            // failed, in which case these calls fail harmlessly with napi_invalid_arg).
            unsafe {
                sys::napi_create_int32(env, *errno, &mut n);
                sys::napi_set_named_property(env, err, c"errno".as_ptr(), n);
                sys::napi_set_named_property(
                    env,
                    err,
                    c"syscall".as_ptr(),
                    js_string(env, syscall),
                );
                sys::napi_set_named_property(env, err, c"path".as_ptr(), js_string(env, path));
            }
        }
        err
    }

    /// Throws it and returns the napi-rs error that says "already thrown".
    pub fn throw(self, env: sys::napi_env) -> Error {
        // SAFETY: called from a napi callback on the JS thread with its env.
        unsafe {
            let value = self.to_value(env);
            sys::napi_throw(env, value);
        }
        Error::new(Status::PendingException, self.message)
    }
}

/// A JS string from Rust text.
///
/// # Safety
/// `env` must be live on its JS thread.
pub unsafe fn js_string(env: sys::napi_env, s: &str) -> sys::napi_value {
    let mut v = ptr::null_mut();
    // SAFETY: `s` is valid UTF-8 of the given length; env is live (caller).
    unsafe {
        sys::napi_create_string_utf8(env, s.as_ptr() as *const c_char, s.len() as isize, &mut v)
    };
    v
}

/// `TypeError [ERR_INVALID_ARG_TYPE]`.
pub fn invalid_type(what: &str, expected: &str, received: &str) -> JsErr {
    JsErr::new(
        Kind::Type,
        "ERR_INVALID_ARG_TYPE",
        format!("The \"{what}\" argument must be {expected}. Received {received}"),
    )
}

/// `TypeError [ERR_INVALID_ARG_VALUE]`.
pub fn invalid_value(what: &str, why: &str, received: &str) -> JsErr {
    JsErr::new(
        Kind::Type,
        "ERR_INVALID_ARG_VALUE",
        format!("The argument '{what}' is invalid: {why}. Received {received}"),
    )
}

/// `RangeError [ERR_OUT_OF_RANGE]`.
pub fn out_of_range(what: &str, rule: &str, received: &str) -> JsErr {
    JsErr::new(
        Kind::Range,
        "ERR_OUT_OF_RANGE",
        format!("The value of \"{what}\" is out of range. It must be {rule}. Received {received}"),
    )
}

/// The error every method throws after `close()`.
pub fn closed(method: &str) -> JsErr {
    JsErr::new(
        Kind::Error,
        "ERR_SHM_CLOSED",
        format!("Cannot call {method}(): the shared memory is closed"),
    )
}

/// A core error for segment `name`, as Node would shape it.
pub fn from_core(err: shm_core::Error, name: &str) -> JsErr {
    use shm_core::Error as E;
    match err {
        E::Name(e) => invalid_value("name", &e.to_string(), &format!("'{name}'")),
        E::Empty => JsErr::new(
            Kind::Error,
            "ERR_SHM_EMPTY",
            format!("Shared memory '{name}' is 0 bytes long; there is nothing to map (has its creator sized it yet?)"),
        ),
        E::TooLarge { requested, size } => out_of_range(
            "length",
            &format!("an integer >= 1 and <= {size} (the size of shared memory '{name}')"),
            &requested.to_string(),
        ),
        E::ExistingTooSmall { requested, size } => out_of_range(
            "length",
            &format!("<= {size}, the size of the existing shared memory '{name}' (exclusive: false never resizes)"),
            &requested.to_string(),
        ),
        E::Os { syscall, source } => system(syscall, &source, name),
    }
}

/// A `SystemError`-like error: `ENOENT: no such file or directory, shm_open 'name'`.
pub fn system(syscall: &'static str, source: &std::io::Error, name: &str) -> JsErr {
    let code = shm_core::error_code(source);
    let desc = shm_core::error_description(source);
    JsErr {
        kind: Kind::Error,
        code,
        message: format!("{code}: {desc}, {syscall} '{name}'"),
        system: Some((
            shm_core::error_errno(source),
            syscall.to_string(),
            name.to_string(),
        )),
    }
}

/// A `Region` error from `method` on segment `name`.
pub fn from_region(err: RegionError, method: &str, name: &str) -> JsErr {
    match err {
        RegionError::Closed => closed(method),
        RegionError::OutOfRange => JsErr::new(
            Kind::Range,
            "ERR_OUT_OF_RANGE",
            format!("{method}(): the range is outside the mapping"),
        ),
        RegionError::Misaligned => JsErr::new(
            Kind::Range,
            "ERR_OUT_OF_RANGE",
            format!("{method}(): the byte offset must be a multiple of 4"),
        ),
        RegionError::ReadOnly => JsErr {
            kind: Kind::Error,
            code: "EACCES",
            message: format!("EACCES: permission denied, {method}() would change shared memory '{name}', which was opened with MemoryAccess.READ"),
            // Shaped like the OS's EACCES (13 on every supported OS), `syscall` naming the call.
            system: Some((-13, method.to_string(), name.to_string())),
        },
        RegionError::Shrunk { size, needed } if size >= needed => JsErr::new(
            Kind::Error,
            "ERR_SHM_SHRUNK",
            // The size check found the range covered after every fault: a peer shrinking and regrowing
            // it faster than the retries, or pages that could not be provided where that cannot be
            // asked (a read-only handle on a full tmpfs): say both, the code stays.
            format!("{method}(): the pages of shared memory '{name}' up to byte {needed} could not be accessed although the segment is long enough ({size} bytes): /dev/shm is full or memory is not available, or another process shrank it and grew it back while mapped; {}", unchanged(method)),
        ),
        RegionError::Shrunk { size, needed } => JsErr::new(
            Kind::Error,
            "ERR_SHM_SHRUNK",
            format!("{method}(): shared memory '{name}' shrank to {size} bytes while mapped (another process truncated it); the range up to byte {needed} is gone; {}", unchanged(method)),
        ),
        RegionError::Unbacked { needed } => {
            // ENOSPC (28 on Linux, the only OS whose fault guard reports this).
            let source = std::io::Error::from_raw_os_error(28);
            JsErr {
                kind: Kind::Error,
                code: "ENOSPC",
                message: format!("ENOSPC: no space left on device, {method}() on shared memory '{name}' up to byte {needed}: the segment is that long but its memory could not be provided (/dev/shm full, or memory not available)"),
                system: Some((shm_core::error_errno(&source), method.to_string(), name.to_string())),
            }
        }
        RegionError::Interrupted => JsErr::new(
            Kind::Error,
            "ERR_SHM_WAIT_INTERRUPTED",
            format!("{method}(): the wait on shared memory '{name}' was interrupted because its thread is stopping"),
        ),
        RegionError::Os(e) => from_core(e, name),
        // `RegionError` is `#[non_exhaustive]`: a variant added to the core later reads as a
        // plain error naming it until the binding maps it to a code of its own.
        other => JsErr::new(
            Kind::Error,
            "ERR_SHM_INTERNAL",
            format!("{method}() on shared memory '{name}' failed: {other:?}"),
        ),
    }
}

/// What a shrink left of the call's effect: a copy cut short by a truncation during it may
/// have copied a prefix; anything else did nothing.
fn unchanged(method: &str) -> &'static str {
    match method {
        "copyFrom" | "copyTo" => "nothing was copied, unless the truncation came during the copy (then a prefix of the range may have been)",
        _ => "nothing was read or changed",
    }
}

/// Shorthand: throw `e` now.
pub fn throw<T>(env: sys::napi_env, e: JsErr) -> Result<T> {
    Err(e.throw(env))
}
