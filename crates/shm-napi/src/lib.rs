//! Node-API binding of `shm-core`: the `SharedMemory` class of node-shared-mem.
//!
//! Thin on purpose: JS values in, `shm-core` calls, JS errors out. The only logic here is what
//! only Node-API can do: choosing zero-copy or caged buffers, detaching on close, and settling
//! `waitAsync` promises.

#![deny(clippy::undocumented_unsafe_blocks)]

use std::ffi::c_void;
use std::ptr;
use std::sync::{Arc, OnceLock};

use napi::bindgen_prelude::*;
use napi::sys;
use napi_derive::napi;
use shm_core::{Access, CreateOptions, Region, RegionError, Segment};

mod args;
mod errors;
mod wait_async;

use errors::{from_core, from_region, throw, JsErr};

/// How a segment is opened. The numeric values are those of node-shared-mem 2.x.
#[napi]
#[allow(clippy::upper_case_acronyms)]
pub enum MemoryAccess {
    /// Read-only. In zero-copy mode `buffer` is a private copy-on-write view: reads see the
    /// segment live; a write into `buffer` changes only this process's copy of that 4 KiB page
    /// (which from then on no longer shows the peers' updates) and never reaches the segment.
    /// `copyTo()` and the writing atomics throw `EACCES`.
    READ = 0,
    /// Read-write (the default): writes into `buffer` are seen by every process at once.
    WRITE = 1,
}

/// A raw JS value returned as is.
pub struct Raw(sys::napi_value);

impl ToNapiValue for Raw {
    unsafe fn to_napi_value(_env: sys::napi_env, val: Self) -> Result<sys::napi_value> {
        Ok(val.0)
    }
}

impl TypeName for Raw {
    fn type_name() -> &'static str {
        "unknown"
    }
    fn value_type() -> ValueType {
        ValueType::Unknown
    }
}

struct Open {
    name: String,
    access: Access,
    region: Arc<Region>,
    /// Strong reference to the one `ArrayBuffer` handed out as `buffer`.
    buffer: sys::napi_ref,
    requires_copy: bool,
    /// Strong reference to the `SharedArrayBuffer` once `sharedBuffer` has been read (`None`
    /// before, or when the runtime cannot make one). A SharedArrayBuffer cannot be detached,
    /// so once one exists `close()` leaves the unmapping to its finalizer.
    shared: Option<sys::napi_ref>,
    /// `sharedBuffer` was read and could not be made (cached `null`).
    shared_unavailable: bool,
}

/// `node_api_create_external_sharedarraybuffer` (Node 26, experimental): its finalizer may run
/// on any thread, without an env.
type CreateExternalSab = unsafe extern "C" fn(
    sys::napi_env,
    *mut c_void,
    usize,
    Option<unsafe extern "C" fn(*mut c_void, *mut c_void)>,
    *mut c_void,
    *mut sys::napi_value,
) -> sys::napi_status;

fn create_external_sab() -> Option<CreateExternalSab> {
    static FUNC: OnceLock<Option<CreateExternalSab>> = OnceLock::new();
    *FUNC.get_or_init(|| {
        shm_core::runtime_symbol(c"node_api_create_external_sharedarraybuffer").map(|p| {
            // SAFETY: the host exports this symbol with exactly this C signature
            // (js_native_api.h, NAPI_EXPERIMENTAL); it is only called on the JS thread.
            unsafe { std::mem::transmute::<*mut c_void, CreateExternalSab>(p.as_ptr()) }
        })
    })
}

unsafe extern "C" fn release_region_noenv(_data: *mut c_void, hint: *mut c_void) {
    // SAFETY: `hint` is the Arc<Region> reference leaked (Arc::into_raw) for this SharedArrayBuffer; called once,
    // from any thread, which Arc and Region (Send + Sync) allow.
    drop(unsafe { Arc::from_raw(hint.cast::<Region>().cast_const()) });
}

/// A named OS shared-memory segment mapped into this process.
///
/// `buffer` is an `ArrayBuffer` over the segment's bytes (zero-copy), or, where the runtime
/// forbids external buffers (Electron's V8 memory cage), a copy that `copyFrom()`/`copyTo()`
/// keep in sync (`requiresCopy === true`).
#[napi(custom_finalize)]
pub struct SharedMemory {
    open: Option<Open>,
}

unsafe extern "C" fn release_region(_env: sys::napi_env, _data: *mut c_void, hint: *mut c_void) {
    // SAFETY: `hint` is the Arc<Region> reference leaked (Arc::into_raw) when the external buffer was created;
    // Node-API calls this finalizer at most once.
    drop(unsafe { Arc::from_raw(hint.cast::<Region>().cast_const()) });
}

fn force_copy() -> bool {
    std::env::var_os("NODE_SHARED_MEM_FORCE_COPY").is_some_and(|v| v == "1")
}

/// Creates the `buffer` of a new instance: external (zero-copy) when allowed, else V8-owned
/// and filled from the segment. Returns the value and whether it is a copy.
fn make_buffer(
    env: sys::napi_env,
    region: &Arc<Region>,
    name: &str,
    copy: bool,
) -> Result<(sys::napi_value, bool)> {
    let mut ab = ptr::null_mut();
    if let (false, Some(js_ptr)) = (copy, region.js_ptr()) {
        let hint = Arc::into_raw(Arc::clone(region)).cast_mut();
        // SAFETY: the pointer is valid for `len` bytes until the Region unmaps, and the region
        // unmaps only after this buffer is detached by `close()` or after this finalizer has
        // released its Arc (see `release_region`).
        let status = unsafe {
            sys::napi_create_external_arraybuffer(
                env,
                js_ptr.as_ptr().cast(),
                region.len(),
                Some(release_region),
                hint.cast(),
                &mut ab,
            )
        };
        if status == sys::Status::napi_ok {
            return Ok((ab, false));
        }
        if status == sys::Status::napi_no_external_buffers_allowed {
            // Refused before taking ownership: the finalizer will never run; reclaim the hint.
            // SAFETY: `hint` came from Arc::into_raw above and was not consumed.
            drop(unsafe { Arc::from_raw(hint.cast_const()) });
        } else {
            // Some failures (e.g. a length past the runtime's maximum) still run the finalizer
            // later, others do not: leave the hint to it (a few bytes at worst) and unmap now —
            // V8 never got a usable buffer over these bytes.
            region.close(true);
            return pending_or(env, JsErr::new(
                errors::Kind::Range,
                "ERR_OUT_OF_RANGE",
                format!("Cannot create an ArrayBuffer of {} bytes over shared memory '{name}' (status {status})", region.len()),
            ));
        }
    }
    // `new ArrayBuffer(len)` rather than napi_create_arraybuffer: when V8 cannot allocate
    // that much, the constructor throws a RangeError, whereas the Node-API call aborts the
    // whole process ("FATAL ERROR: v8::ArrayBuffer::New Allocation failed").
    let mut data = ptr::null_mut();
    let mut got = 0usize;
    // SAFETY: env is live; every out-pointer is a local; a failing call leaves a JS exception
    // pending (reported below) or a non-ok status.
    let status = unsafe {
        let mut global = ptr::null_mut();
        let mut ctor = ptr::null_mut();
        let mut arg = ptr::null_mut();
        sys::napi_get_global(env, &mut global);
        sys::napi_get_named_property(env, global, c"ArrayBuffer".as_ptr(), &mut ctor);
        sys::napi_create_double(env, region.len() as f64, &mut arg);
        match sys::napi_new_instance(env, ctor, 1, &arg, &mut ab) {
            sys::Status::napi_ok => sys::napi_get_arraybuffer_info(env, ab, &mut data, &mut got),
            failed => failed,
        }
    };
    if status != sys::Status::napi_ok || data.is_null() || got != region.len() {
        return pending_or(
            env,
            JsErr::new(
                errors::Kind::Error,
                "ERR_MEMORY_ALLOCATION_FAILED",
                format!(
                    "Cannot allocate an ArrayBuffer of {} bytes to copy shared memory '{name}' into",
                    region.len()
                ),
            ),
        );
    }
    // SAFETY: V8 just allocated `len` bytes at `data` for this buffer; nothing else uses them yet.
    let bytes = unsafe { std::slice::from_raw_parts_mut(data.cast::<u8>(), region.len()) };
    region
        .read(0, bytes)
        .map_err(|e| from_region(e, "SharedMemory", name).throw(env))?;
    Ok((ab, true))
}

/// Takes (clears and returns) the pending JS exception, if any.
fn take_pending_exception(env: sys::napi_env) -> Option<sys::napi_value> {
    let mut pending = false;
    let mut exc = ptr::null_mut();
    // SAFETY: env is the live env of the current callback; both out-pointers are locals.
    unsafe {
        sys::napi_is_exception_pending(env, &mut pending);
        if !pending {
            return None;
        }
        sys::napi_get_and_clear_last_exception(env, &mut exc);
    }
    Some(exc)
}

/// Throws `e`, unless a JS exception is already pending: one that carries a `code` (e.g. Node's
/// ERR_BUFFER_TOO_LARGE) is thrown again as is; one without (V8's allocation RangeError) is
/// folded into `e`'s message, so that what reaches JS always has a code.
fn pending_or<T>(env: sys::napi_env, mut e: JsErr) -> Result<T> {
    if let Some(exc) = take_pending_exception(env) {
        let code = args::property(env, exc, c"code").ok();
        if code.is_some_and(|c| args::string_arg(env, c, "code").is_ok()) {
            // SAFETY: rethrows the exception just taken, on the JS thread of `env`.
            unsafe { sys::napi_throw(env, exc) };
            return Err(Error::new(Status::PendingException, e.message));
        }
        if let Some(m) = args::property(env, exc, c"message")
            .ok()
            .and_then(|m| args::string_arg(env, m, "message").ok())
        {
            e.message = format!("{} ({m})", e.message);
        }
    }
    throw(env, e)
}

fn parse_access(env: sys::napi_env, v: sys::napi_value) -> std::result::Result<Access, JsErr> {
    match args::int_arg(env, v, "access", f64::MIN, f64::MAX) {
        Ok(None) => Ok(Access::ReadWrite),
        Ok(Some(0.0)) => Ok(Access::ReadOnly),
        Ok(Some(1.0)) => Ok(Access::ReadWrite),
        Ok(Some(n)) => Err(errors::out_of_range(
            "access",
            "MemoryAccess.READ (0) or MemoryAccess.WRITE (1)",
            &n.to_string(),
        )),
        Err(e) if e.code == "ERR_OUT_OF_RANGE" => Err(errors::out_of_range(
            "access",
            "MemoryAccess.READ (0) or MemoryAccess.WRITE (1)",
            &args::describe(env, v),
        )),
        Err(e) => Err(e),
    }
}

fn length_arg(env: sys::napi_env, v: sys::napi_value) -> std::result::Result<Option<u64>, JsErr> {
    Ok(args::int_arg(env, v, "length", 1.0, args::MAX_SAFE)?.map(|n| n as u64))
}

fn create_options(
    env: sys::napi_env,
    v: sys::napi_value,
) -> std::result::Result<CreateOptions, JsErr> {
    let mut options = CreateOptions::default();
    if args::is_undefined(env, v) {
        return Ok(options);
    }
    if !args::is_object(env, v) {
        return Err(errors::invalid_type(
            "options",
            "of type object",
            &args::describe(env, v),
        ));
    }
    let thrown = || JsErr::new(errors::Kind::Error, "", "");
    let mode = args::property(env, v, c"mode").map_err(|_| thrown())?;
    if let Some(m) = args::int_arg(env, mode, "options.mode", 0.0, 0o7777 as f64)? {
        options.mode = m as u32;
    }
    let exclusive = args::property(env, v, c"exclusive").map_err(|_| thrown())?;
    if let Some(x) = args::bool_arg(env, exclusive, "options.exclusive")? {
        options.exclusive = x;
    }
    Ok(options)
}

/// `Err` with an empty code marks "a JS exception (from a getter) is already pending".
fn raise<T>(env: sys::napi_env, e: JsErr) -> Result<T> {
    if e.code.is_empty() {
        Err(Error::new(
            Status::PendingException,
            "exception in an options getter",
        ))
    } else {
        throw(env, e)
    }
}

impl SharedMemory {
    fn start(
        env: sys::napi_env,
        name: String,
        access: Access,
        segment: Segment,
        length: Option<u64>,
    ) -> Result<Self> {
        // SAFETY: shm-core's mapping contract (no truncation below the mapped length) cannot be
        // enforced on other processes; a peer that shrinks a segment others map is the documented
        // limit (README, Limits): copies re-check and throw ERR_SHM_SHRUNK, the rest faults.
        let region =
            unsafe { Region::open(segment, length) }.map_err(|e| from_core(e, &name).throw(env))?;
        let region = Arc::new(region);
        let copy = force_copy() || region.js_ptr().is_none();
        let (ab, requires_copy) = make_buffer(env, &region, &name, copy)?;
        let mut buffer = ptr::null_mut();
        // SAFETY: `ab` is a live value of this callback; refcount 1 makes the reference strong.
        unsafe { sys::napi_create_reference(env, ab, 1, &mut buffer) };
        Ok(SharedMemory {
            open: Some(Open {
                name,
                access,
                region,
                buffer,
                requires_copy,
                shared: None,
                shared_unavailable: false,
            }),
        })
    }

    fn open_or_throw(&self, env: &Env, method: &str) -> Result<&Open> {
        match &self.open {
            Some(o) => Ok(o),
            None => throw(env.raw(), errors::closed(method)),
        }
    }

    /// Validates `(srcOffset, dstOffset, length)` against a mapping of `len` bytes.
    fn ranges(
        env: sys::napi_env,
        len: usize,
        src: &Unknown,
        dst: &Unknown,
        n: &Unknown,
    ) -> Result<(usize, usize, usize)> {
        let check = || -> std::result::Result<(usize, usize, usize), JsErr> {
            let s = args::index_arg(env, src.raw(), "srcOffset", len)?.unwrap_or(0);
            let d = args::index_arg(env, dst.raw(), "dstOffset", len)?.unwrap_or(0);
            let rest = (len - s).min(len - d);
            let n = args::index_arg(env, n.raw(), "length", rest)?.unwrap_or(rest);
            Ok((s, d, n))
        };
        check().or_else(|e| throw(env, e))
    }

    /// Runs `f` on the bytes of the caged (V8-owned) buffer.
    fn with_caged_bytes<R>(
        env: sys::napi_env,
        open: &Open,
        method: &str,
        f: impl FnOnce(&mut [u8]) -> Result<R>,
    ) -> Result<R> {
        let mut ab = ptr::null_mut();
        let mut data = ptr::null_mut();
        let mut len = 0usize;
        // SAFETY: `open.buffer` is a live strong reference; get_arraybuffer_info reports
        // (null, 0) for a detached buffer.
        unsafe {
            sys::napi_get_reference_value(env, open.buffer, &mut ab);
            sys::napi_get_arraybuffer_info(env, ab, &mut data, &mut len);
        }
        if data.is_null() || len != open.region.len() {
            return throw(env, JsErr::new(
                errors::Kind::Error,
                "ERR_SHM_DETACHED",
                format!("Cannot call {method}(): buffer was detached (transferred elsewhere); nothing to copy with"),
            ));
        }
        // SAFETY: V8 owns `len` bytes at `data` for this buffer, which our strong reference keeps
        // alive; we are on the JS thread, so no JS code touches them during the copy.
        f(unsafe { std::slice::from_raw_parts_mut(data.cast::<u8>(), len) })
    }

    /// The frame of every Int32 method: checks that the instance is open and `byteOffset`, then
    /// runs `op` (which checks the other arguments and calls the region), turning argument
    /// errors and region errors into JS errors that name `method`.
    fn int32_op<T>(
        &self,
        env: &Env,
        method: &str,
        byte_offset: &Unknown,
        op: impl FnOnce(&Open, usize) -> std::result::Result<std::result::Result<T, RegionError>, JsErr>,
    ) -> Result<T> {
        let open = self.open_or_throw(env, method)?;
        let off = Self::offset_arg(env, open, byte_offset)?;
        match op(open, off) {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => throw(env.raw(), from_region(e, method, &open.name)),
            Err(e) => throw(env.raw(), e),
        }
    }

    fn offset_arg(env: &Env, open: &Open, v: &Unknown) -> Result<usize> {
        let max = open.region.len().saturating_sub(4);
        match args::index_arg(env.raw(), v.raw(), "byteOffset", max) {
            Ok(Some(o)) if o % 4 == 0 => Ok(o),
            Ok(Some(o)) => throw(
                env.raw(),
                errors::out_of_range("byteOffset", "a multiple of 4", &o.to_string()),
            ),
            Ok(None) => throw(
                env.raw(),
                errors::invalid_type("byteOffset", "of type number", "undefined"),
            ),
            Err(e) => throw(env.raw(), e),
        }
    }
}

#[napi]
impl SharedMemory {
    /// Opens an existing named shared-memory segment; never creates one.
    ///
    /// @param name - The segment's name. On Linux/macOS the leading `/` is optional and no other
    ///   `/` is allowed; on Windows it is used as given (e.g. `Local\\frames`).
    /// @param length - Bytes to map, a positive integer no larger than the segment. Defaults to
    ///   the segment's size.
    /// @param access - `MemoryAccess.WRITE` (default) or `MemoryAccess.READ`.
    /// @throws TypeError `ERR_INVALID_ARG_TYPE` / `ERR_INVALID_ARG_VALUE` for a bad name or type.
    /// @throws RangeError `ERR_OUT_OF_RANGE` for a bad length or access.
    /// @throws Error `ENOENT`, `EACCES`, … (with `errno`, `syscall`, `path`) when the OS refuses.
    #[napi(
        constructor,
        ts_args_type = "name: string, length?: number, access?: MemoryAccess"
    )]
    pub fn new(env: Env, name: Unknown, length: Unknown, access: Unknown) -> Result<Self> {
        let e = env.raw();
        let parsed = (|| {
            let name = args::string_arg(e, name.raw(), "name")?;
            let length = length_arg(e, length.raw())?;
            let access = parse_access(e, access.raw())?;
            Ok::<_, JsErr>((name, length, access))
        })();
        let (name, length, access) = parsed.or_else(|err| throw(e, err))?;
        let segment = Segment::open(&name, access).map_err(|err| from_core(err, &name).throw(e))?;
        Self::start(e, name, access, segment, length)
    }

    /// Creates a new segment of `length` zero-filled bytes and opens it read-write.
    ///
    /// @param options.mode - Permission bits of a new segment (default `0o600`: only this user),
    ///   filtered by the process umask as for `fs.open`; ignored on Windows.
    /// @param options.exclusive - `true` (default): fail with `EEXIST` if the name exists.
    ///   `false`: open an existing segment instead, if it has at least `length` bytes
    ///   (it is never resized), else create it.
    /// @throws Error `EEXIST` when exclusive and the name exists.
    #[napi(
        factory,
        ts_args_type = "name: string, length: number, options?: { mode?: number; exclusive?: boolean }"
    )]
    pub fn create(env: Env, name: Unknown, length: Unknown, options: Unknown) -> Result<Self> {
        let e = env.raw();
        let parsed = (|| {
            let name = args::string_arg(e, name.raw(), "name")?;
            let length = match length_arg(e, length.raw())? {
                Some(l) => l,
                None => {
                    return Err(errors::invalid_type(
                        "length",
                        "of type number",
                        "undefined",
                    ))
                }
            };
            let options = create_options(e, options.raw())?;
            Ok::<_, JsErr>((name, length, options))
        })();
        let (name, length, options) = match parsed {
            Ok(p) => p,
            Err(err) => return raise(e, err),
        };
        let segment = Segment::create(&name, length, options)
            .map_err(|err| from_core(err, &name).throw(e))?;
        let created = segment.created();
        let opened = Self::start(e, name.clone(), Access::ReadWrite, segment, Some(length));
        if opened.is_err() && created {
            // Mapping it failed (e.g. longer than this runtime's largest ArrayBuffer): do not
            // leave the name we just made behind.
            let _ = Segment::unlink(&name);
        }
        opened
    }

    /// Removes a segment's name: later opens fail with `ENOENT`; existing mappings (here and in
    /// other processes) stay valid. Returns `false` when no segment had that name.
    ///
    /// On Windows a name lives exactly as long as some handle to it, so this removes nothing and
    /// only reports whether the name exists.
    #[napi(ts_args_type = "name: string")]
    pub fn unlink(env: Env, name: Unknown) -> Result<bool> {
        let e = env.raw();
        let name = args::string_arg(e, name.raw(), "name").or_else(|err| throw(e, err))?;
        Segment::unlink(&name).or_else(|err| throw(e, from_core(err, &name)))
    }

    /// The name the segment was opened with; `undefined` after `close()`.
    #[napi(getter, ts_return_type = "string | undefined")]
    pub fn name(&self) -> Either<String, ()> {
        self.open
            .as_ref()
            .map_or(Either::B(()), |o| Either::A(o.name.clone()))
    }

    /// Bytes mapped (the length of `buffer`); `undefined` after `close()`.
    #[napi(getter, ts_return_type = "number | undefined")]
    pub fn length(&self) -> Either<f64, ()> {
        self.open
            .as_ref()
            .map_or(Either::B(()), |o| Either::A(o.region.len() as f64))
    }

    /// The access the segment was opened with; `undefined` after `close()`.
    #[napi(getter, ts_return_type = "MemoryAccess | undefined")]
    pub fn access(&self) -> Either<u32, ()> {
        self.open.as_ref().map_or(Either::B(()), |o| {
            Either::A(match o.access {
                Access::ReadOnly => 0,
                Access::ReadWrite => 1,
            })
        })
    }

    /// The bytes: always the same `ArrayBuffer` object. Over the segment itself when
    /// `requiresCopy` is `false`; a V8-owned copy when it is `true`. Detached (length 0) by
    /// `close()`; `undefined` after it.
    #[napi(getter, ts_return_type = "ArrayBuffer | undefined")]
    pub fn buffer(&self, env: Env) -> Either<Raw, ()> {
        match &self.open {
            None => Either::B(()),
            Some(o) => {
                let mut v = ptr::null_mut();
                // SAFETY: a live strong reference of this env.
                unsafe { sys::napi_get_reference_value(env.raw(), o.buffer, &mut v) };
                Either::A(Raw(v))
            }
        }
    }

    /// `true` when `buffer` is a copy (the V8 memory cage forbids external buffers, e.g. in
    /// Electron ≥ 21, or `NODE_SHARED_MEM_FORCE_COPY=1`): sync it with `copyFrom()`/`copyTo()`.
    /// `undefined` after `close()`.
    #[napi(getter, ts_return_type = "boolean | undefined")]
    pub fn requires_copy(&self) -> Either<bool, ()> {
        self.open
            .as_ref()
            .map_or(Either::B(()), |o| Either::A(o.requires_copy))
    }

    /// A `SharedArrayBuffer` over the segment's bytes (zero-copy), which can be posted to
    /// `worker_threads` workers without copying and used with `Atomics` there; always the same
    /// object. `null` where the runtime cannot make one: it needs Node-API's experimental
    /// `node_api_create_external_sharedarraybuffer` (Node.js 26+), looked up at run time, and
    /// zero-copy mode (never in caged mode, where external memory is forbidden). Once it has
    /// been read, `close()` cannot revoke it: the mapping then stays until every
    /// SharedArrayBuffer over it is garbage-collected (the OS handle is still released at once).
    /// `undefined` after `close()`.
    #[napi(getter, ts_return_type = "SharedArrayBuffer | null | undefined")]
    pub fn shared_buffer(&mut self, env: Env) -> Result<Either<Raw, ()>> {
        let e = env.raw();
        let Some(open) = self.open.as_mut() else {
            return Ok(Either::B(()));
        };
        let mut value = ptr::null_mut();
        if let Some(r) = open.shared {
            // SAFETY: a live strong reference of this env.
            unsafe { sys::napi_get_reference_value(e, r, &mut value) };
            return Ok(Either::A(Raw(value)));
        }
        let (create, js_ptr) = match (create_external_sab(), open.region.js_ptr()) {
            (Some(f), Some(p)) if !open.requires_copy && !open.shared_unavailable => (f, p),
            _ => {
                // SAFETY: env is live.
                unsafe { sys::napi_get_null(e, &mut value) };
                return Ok(Either::A(Raw(value)));
            }
        };
        let hint = Arc::into_raw(Arc::clone(&open.region)).cast_mut();
        // SAFETY: same contract as the external ArrayBuffer in `make_buffer`, except that this
        // buffer cannot be detached: the Region's bytes stay mapped until its finalizer drops
        // the Arc (see `close`).
        let status = unsafe {
            create(
                e,
                js_ptr.as_ptr().cast(),
                open.region.len(),
                Some(release_region_noenv),
                hint.cast(),
                &mut value,
            )
        };
        if status != sys::Status::napi_ok {
            if status == sys::Status::napi_no_external_buffers_allowed {
                // SAFETY: refused before taking ownership; the hint is ours again.
                drop(unsafe { Arc::from_raw(hint.cast_const()) });
            }
            // Other failures: leave the hint to a finalizer that may still run (a few bytes), and
            // drop any exception of the failed call: this getter's documented answer is `null`.
            let _ = take_pending_exception(e);
            // SAFETY: env is live.
            unsafe { sys::napi_get_null(e, &mut value) };
            open.shared_unavailable = true;
            return Ok(Either::A(Raw(value)));
        }
        let mut r = ptr::null_mut();
        // SAFETY: `value` is the live SharedArrayBuffer just made; refcount 1 = strong.
        unsafe { sys::napi_create_reference(e, value, 1, &mut r) };
        open.shared = Some(r);
        Ok(Either::A(Raw(value)))
    }

    /// `true` once `close()` has run.
    #[napi(getter)]
    pub fn closed(&self) -> bool {
        self.open.is_none()
    }

    /// Copies segment → `buffer`: `length` bytes from segment offset `srcOffset` to buffer
    /// offset `dstOffset`. Defaults: 0, 0, and the most bytes that fit both ranges. A no-op
    /// (arguments still checked) when `requiresCopy` is `false`.
    /// @throws RangeError `ERR_OUT_OF_RANGE` for negative, fractional or out-of-bounds ranges.
    /// @throws Error `ERR_SHM_SHRUNK` when another process truncated the segment under the range.
    #[napi(ts_args_type = "srcOffset?: number, dstOffset?: number, length?: number")]
    pub fn copy_from(
        &self,
        env: Env,
        src_offset: Unknown,
        dst_offset: Unknown,
        length: Unknown,
    ) -> Result<()> {
        let open = self.open_or_throw(&env, "copyFrom")?;
        let (s, d, n) = Self::ranges(
            env.raw(),
            open.region.len(),
            &src_offset,
            &dst_offset,
            &length,
        )?;
        if !open.requires_copy {
            return Ok(());
        }
        Self::with_caged_bytes(env.raw(), open, "copyFrom", |bytes| {
            open.region
                .read(s, &mut bytes[d..d + n])
                .or_else(|err| throw(env.raw(), from_region(err, "copyFrom", &open.name)))
        })
    }

    /// Copies `buffer` → segment: `length` bytes from buffer offset `srcOffset` to segment
    /// offset `dstOffset`; bytes outside that range are untouched. Same defaults and checks as
    /// `copyFrom`; a no-op when `requiresCopy` is `false`.
    /// @throws Error `EACCES` on a `MemoryAccess.READ` instance (in both modes).
    #[napi(ts_args_type = "srcOffset?: number, dstOffset?: number, length?: number")]
    pub fn copy_to(
        &self,
        env: Env,
        src_offset: Unknown,
        dst_offset: Unknown,
        length: Unknown,
    ) -> Result<()> {
        let open = self.open_or_throw(&env, "copyTo")?;
        let (s, d, n) = Self::ranges(
            env.raw(),
            open.region.len(),
            &src_offset,
            &dst_offset,
            &length,
        )?;
        if open.access == Access::ReadOnly {
            return throw(
                env.raw(),
                from_region(RegionError::ReadOnly, "copyTo", &open.name),
            );
        }
        if !open.requires_copy {
            return Ok(());
        }
        Self::with_caged_bytes(env.raw(), open, "copyTo", |bytes| {
            open.region
                .write(d, &bytes[s..s + n])
                .or_else(|err| throw(env.raw(), from_region(err, "copyTo", &open.name)))
        })
    }

    /// Atomically reads the `Int32` at `byteOffset` (a multiple of 4) of the segment itself,
    /// in both modes.
    #[napi(ts_args_type = "byteOffset: number")]
    pub fn atomic_load(&self, env: Env, byte_offset: Unknown) -> Result<i32> {
        self.int32_op(&env, "atomicLoad", &byte_offset, |open, off| {
            Ok(open.region.load(off))
        })
    }

    /// Atomically stores `value` (an Int32) at `byteOffset`; returns `value`.
    #[napi(ts_args_type = "byteOffset: number, value: number")]
    pub fn atomic_store(&self, env: Env, byte_offset: Unknown, value: Unknown) -> Result<i32> {
        self.int32_op(&env, "atomicStore", &byte_offset, |open, off| {
            let v = args::i32_arg(env.raw(), value.raw(), "value")?;
            Ok(open.region.store(off, v))
        })
    }

    /// Atomically adds `delta` (an Int32, wrapping) at `byteOffset`; returns the old value.
    #[napi(ts_args_type = "byteOffset: number, delta: number")]
    pub fn atomic_add(&self, env: Env, byte_offset: Unknown, delta: Unknown) -> Result<i32> {
        self.int32_op(&env, "atomicAdd", &byte_offset, |open, off| {
            let v = args::i32_arg(env.raw(), delta.raw(), "delta")?;
            Ok(open.region.add(off, v))
        })
    }

    /// Atomically replaces the Int32 at `byteOffset` with `replacement` if it equals `expected`;
    /// returns the old value (equal to `expected` when it swapped).
    #[napi(ts_args_type = "byteOffset: number, expected: number, replacement: number")]
    pub fn atomic_compare_exchange(
        &self,
        env: Env,
        byte_offset: Unknown,
        expected: Unknown,
        replacement: Unknown,
    ) -> Result<i32> {
        self.int32_op(&env, "atomicCompareExchange", &byte_offset, |open, off| {
            let ex = args::i32_arg(env.raw(), expected.raw(), "expected")?;
            let re = args::i32_arg(env.raw(), replacement.raw(), "replacement")?;
            Ok(open.region.compare_exchange(off, ex, re))
        })
    }

    /// Blocks this thread while the Int32 at `byteOffset` equals `expected`, until another
    /// process (or thread) calls `notify` on it, or `timeout` ms pass (default: forever).
    /// Like `Atomics.wait`, but across processes. A wake can be spurious: re-check the value.
    #[napi(
        ts_args_type = "byteOffset: number, expected: number, timeout?: number",
        ts_return_type = "'ok' | 'not-equal' | 'timed-out'"
    )]
    pub fn wait(
        &self,
        env: Env,
        byte_offset: Unknown,
        expected: Unknown,
        timeout: Unknown,
    ) -> Result<&'static str> {
        self.int32_op(&env, "wait", &byte_offset, |open, off| {
            let ex = args::i32_arg(env.raw(), expected.raw(), "expected")?;
            let t = args::timeout_arg(env.raw(), timeout.raw())?;
            Ok(open.region.wait(off, ex, t).map(|o| o.as_str()))
        })
    }

    /// Like `wait`, without blocking: the wait runs on a thread of its own and the promise
    /// settles with `'ok' | 'not-equal' | 'timed-out'`; it rejects with `ERR_SHM_CLOSED` if
    /// `close()` runs meanwhile. A pending wait keeps the process alive, as a pending read would.
    #[napi(
        ts_args_type = "byteOffset: number, expected: number, timeout?: number",
        ts_return_type = "Promise<'ok' | 'not-equal' | 'timed-out'>"
    )]
    pub fn wait_async(
        &self,
        env: Env,
        byte_offset: Unknown,
        expected: Unknown,
        timeout: Unknown,
    ) -> Result<Raw> {
        self.int32_op(&env, "waitAsync", &byte_offset, |open, off| {
            let ex = args::i32_arg(env.raw(), expected.raw(), "expected")?;
            let t = args::timeout_arg(env.raw(), timeout.raw())?;
            let region = Arc::clone(&open.region);
            Ok(Ok(wait_async::start(
                env.raw(),
                region,
                open.name.clone(),
                off,
                ex,
                t,
            )))
        })?
        .map(Raw)
    }

    /// Wakes up to `count` (default: all) waiters on the Int32 at `byteOffset`, in any process.
    /// Returns how many were woken where the OS tells (Linux, macOS); 0 on Windows.
    #[napi(ts_args_type = "byteOffset: number, count?: number")]
    pub fn notify(&self, env: Env, byte_offset: Unknown, count: Unknown) -> Result<u32> {
        self.int32_op(&env, "notify", &byte_offset, |open, off| {
            let c = args::count_arg(env.raw(), count.raw())?;
            Ok(open.region.notify(off, c))
        })
    }

    /// Unmaps and releases the OS handle now. `buffer` is detached (every view over it reads
    /// length 0), pending `waitAsync` promises reject with `ERR_SHM_CLOSED`, later calls throw
    /// `ERR_SHM_CLOSED`, and the properties read `undefined`. A second call does nothing.
    #[napi]
    pub fn close(&mut self, env: Env) {
        let Some(open) = self.open.take() else {
            return;
        };
        let e = env.raw();
        let mut ab = ptr::null_mut();
        let mut was_detached = false;
        // SAFETY: live reference of this env, deleted exactly once here (the finalizer sees
        // `open == None` afterwards).
        let detached_by_us = unsafe {
            sys::napi_get_reference_value(e, open.buffer, &mut ab);
            sys::napi_is_detached_arraybuffer(e, ab, &mut was_detached);
            let ok = !was_detached && sys::napi_detach_arraybuffer(e, ab) == sys::Status::napi_ok;
            sys::napi_delete_reference(e, open.buffer);
            if let Some(r) = open.shared {
                sys::napi_delete_reference(e, r);
            }
            ok
        };
        // A zero-copy buffer that someone else detached (ArrayBuffer.prototype.transfer) may
        // live on elsewhere over these bytes: then the mapping stays until that buffer is
        // garbage-collected (its finalizer holds the Region). A copy never exposed the mapping.
        // A SharedArrayBuffer cannot be detached at all.
        open.region
            .close(open.shared.is_none() && (open.requires_copy || detached_by_us));
    }

    /// Same as `close()`, so that `using mem = new SharedMemory(…)` closes it.
    #[napi(well_known_symbol = "dispose")]
    pub fn dispose(&mut self, env: Env) {
        self.close(env)
    }
}

impl ObjectFinalize for SharedMemory {
    fn finalize(mut self, env: Env) -> Result<()> {
        if let Some(open) = self.open.take() {
            // SAFETY: the reference belongs to this env and was not deleted (open was Some).
            unsafe { sys::napi_delete_reference(env.raw(), open.buffer) };
            if let Some(r) = open.shared {
                // SAFETY: as above.
                unsafe { sys::napi_delete_reference(env.raw(), r) };
            }
            // Dropping `open` drops our Arc<Region>: the mapping goes once `buffer` (whose
            // finalizer holds the other Arc) and any pending waitAsync are gone too.
        }
        Ok(())
    }
}
