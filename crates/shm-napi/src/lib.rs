//! Node-API binding of `shm-core`: the native half of node-shared-mem's `SharedMemory`.
//!
//! Thin on purpose. The public class is TypeScript (`src/shared-memory.ts`): it holds the
//! properties as plain fields, checks the hot-path arguments, and runs zero-copy atomics and the
//! no-op copies in JS. This crate opens, maps and closes segments (checking their arguments and
//! shaping their errors here, as they are not hot), and offers raw Node-API callbacks for what
//! only native code can do per call: caged copies, caged atomics, `wait`/`notify`/`waitAsync`.
//! Ownership of every native resource is documented in `instance.rs` and `wait_async.rs`.

#![deny(clippy::undocumented_unsafe_blocks)]

use std::ffi::c_void;
use std::ptr;
use std::sync::{Arc, OnceLock};

use napi::bindgen_prelude::*;
use napi::sys;
use napi_derive::napi;
use shm_core::{Access, CreateOptions, Region, Segment};

mod args;
mod buffers;
mod errors;
mod hot;
mod instance;
mod wait_async;

use errors::{from_core, throw, JsErr};
use instance::Instance;

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

/// Takes (clears and returns) the pending JS exception, if any.
pub(crate) fn take_pending_exception(env: sys::napi_env) -> Option<sys::napi_value> {
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

/// A V8-owned `ArrayBuffer` of `len` bytes, made by `napi_create_arraybuffer` (never by
/// whatever `globalThis.ArrayBuffer` is now: `close()` detaches this buffer, so it must be one
/// nobody else holds). V8 aborts the process when that call cannot allocate, so the allocation
/// is tried first with the same allocator (`calloc`; untouched pages cost nothing) and refused
/// with a coded error when it fails or exceeds what the runtime allows.
fn v8_buffer(env: sys::napi_env, len: usize, name: &str) -> Result<(sys::napi_value, *mut u8)> {
    let refuse = || {
        pending_or(
            env,
            JsErr::new(
                errors::Kind::Error,
                "ERR_MEMORY_ALLOCATION_FAILED",
                format!("Cannot allocate an ArrayBuffer of {len} bytes to copy shared memory '{name}' into"),
            ),
        )
    };
    // V8's limit (2^53 - 1 bytes on 64-bit targets); larger would be a fatal API check.
    if len as u64 > args::MAX_SAFE as u64 {
        return refuse();
    }
    let Ok(layout) = std::alloc::Layout::from_size_align(len, 16) else {
        return refuse();
    };
    // SAFETY: a non-zero size (`len` ≥ 1, regions are never empty); the block is freed at once.
    // `black_box`: without it the optimizer may drop an unused allocation and assume success.
    let probe = std::hint::black_box(unsafe { std::alloc::alloc_zeroed(layout) });
    if probe.is_null() {
        return refuse();
    }
    // SAFETY: allocated just above with this layout.
    unsafe { std::alloc::dealloc(probe, layout) };
    let mut ab = ptr::null_mut();
    let mut data = ptr::null_mut();
    // SAFETY: env is live; the out-pointers are locals; a failing call leaves a non-ok status
    // (and perhaps a pending exception, reported below).
    let status = unsafe { sys::napi_create_arraybuffer(env, len, &mut data, &mut ab) };
    if status != sys::Status::napi_ok || data.is_null() {
        return refuse();
    }
    Ok((ab, data.cast()))
}

/// Maps `segment` and builds what the JS class keeps: `[handle, buffer, caged, length]` (the
/// length from here, not from `buffer.byteLength`, a getter JavaScript can replace).
fn start(env: sys::napi_env, name: String, segment: Segment, length: Option<u64>) -> Result<Raw> {
    let access = segment.access();
    // SAFETY: shm-core's mapping contract (no truncation below the mapped length) cannot be
    // enforced on other processes; a peer that shrinks a segment others map is the documented
    // limit (README, Limits): the region's copies, atomics, wait and notify throw
    // ERR_SHM_SHRUNK (shm-core's fault guard); plain JS access to a zero-copy buffer faults.
    let region =
        unsafe { Region::open(segment, length) }.map_err(|e| from_core(e, &name).throw(env))?;
    let region = Arc::new(region);
    // What the buffer's witness sees at teardown (instance.rs).
    let mark = Some(Arc::new(std::sync::atomic::AtomicI32::new(0)));
    let zero_copy = match region.js_ptr() {
        Some(p) => {
            instance::external_buffer(env, &region, p.as_ptr(), mark, &name).map_err(|e| {
                region.close(true);
                e.throw(env)
            })?
        }
        None => None,
    };
    let (buffer, caged) = match zero_copy {
        Some(ab) => (ab, false),
        None => {
            let (ab, data) = v8_buffer(env, region.len(), &name)?;
            // SAFETY: V8 just allocated `len` bytes at `data` for this buffer; nothing else
            // uses them yet.
            let bytes = unsafe { std::slice::from_raw_parts_mut(data, region.len()) };
            // Through the handle, not the mapping: pages of the segment nobody wrote stay
            // unallocated (a sparse segment would otherwise cost its whole size in /dev/shm).
            region
                .read_unmapped(0, bytes)
                .map_err(|e| errors::from_region(e, "SharedMemory", &name).throw(env))?;
            (ab, true)
        }
    };
    let len = region.len();
    let made = buffers::Made::default();
    made.remember(env, buffer);
    let handle = instance::wrap(
        env,
        Instance {
            region,
            name,
            access,
            caged,
            shared_made: Default::default(),
            closed: Default::default(),
            held: std::cell::Cell::new(ptr::null_mut()),
            held_view: std::cell::Cell::new(ptr::null_mut()),
            made,
        },
        (!caged).then_some(buffer),
    )?;
    let mut out = ptr::null_mut();
    // SAFETY: env is live; all values are locals of this callback.
    unsafe {
        sys::napi_create_array_with_length(env, 4, &mut out);
        let mut flag = ptr::null_mut();
        let mut length = ptr::null_mut();
        sys::napi_get_boolean(env, caged, &mut flag);
        sys::napi_create_double(env, len as f64, &mut length);
        sys::napi_set_element(env, out, 0, handle);
        sys::napi_set_element(env, out, 1, buffer);
        sys::napi_set_element(env, out, 2, flag);
        sys::napi_set_element(env, out, 3, length);
    }
    Ok(Raw(out))
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
    // Permission bits only: setuid, setgid and sticky bits are refused, not silently dropped.
    if let Some(m) = args::int_arg(env, mode, "options.mode", 0.0, 0o777 as f64)? {
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

/// Internal: opens an existing segment for `new SharedMemory(name, length, access)`;
/// returns `[handle, buffer, caged, length]`. Use the `SharedMemory` class instead.
#[napi(ts_return_type = "[object, ArrayBuffer, boolean, number]")]
pub fn open_segment(env: Env, name: Unknown, length: Unknown, access: Unknown) -> Result<Raw> {
    let e = env.raw();
    let parsed = (|| {
        let name = args::string_arg(e, name.raw(), "name")?;
        let length = length_arg(e, length.raw())?;
        let access = parse_access(e, access.raw())?;
        Ok::<_, JsErr>((name, length, access))
    })();
    let (name, length, access) = parsed.or_else(|err| throw(e, err))?;
    let segment = Segment::open(&name, access).map_err(|err| from_core(err, &name).throw(e))?;
    start(e, name, segment, length)
}

/// Internal: creates a segment for `SharedMemory.create(name, length, options)`; returns
/// `[handle, buffer, caged, length]`. Use the `SharedMemory` class instead.
#[napi(ts_return_type = "[object, ArrayBuffer, boolean, number]")]
pub fn create_segment(env: Env, name: Unknown, length: Unknown, options: Unknown) -> Result<Raw> {
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
    let segment =
        Segment::create(&name, length, options).map_err(|err| from_core(err, &name).throw(e))?;
    let created = segment.created();
    let opened = start(e, name.clone(), segment, Some(length));
    if opened.is_err() && created {
        // Mapping it failed (e.g. longer than this runtime's largest ArrayBuffer): do not
        // leave the name we just made behind.
        let _ = Segment::unlink(&name);
    }
    opened
}

/// Internal: puts the SIGBUS/SIGSEGV fault guard back on top (shm-core's
/// `reinstall_fault_guard`), called by the facade after Node installs or removes libuv's
/// handler for a JS `SIGBUS`/`SIGSEGV` listener. `false` when it could not (the chain of
/// actions is full): the facade then emits a process warning.
#[napi]
pub fn reinstall_fault_guard() -> bool {
    shm_core::reinstall_fault_guard()
}

/// Internal: `SharedMemory.unlink(name)`.
#[napi]
pub fn unlink_segment(env: Env, name: Unknown) -> Result<bool> {
    let e = env.raw();
    let name = args::string_arg(e, name.raw(), "name").or_else(|err| throw(e, err))?;
    Segment::unlink(&name).or_else(|err| throw(e, from_core(err, &name)))
}

/// `node_api_create_external_sharedarraybuffer` (Node 22.23+/24.21+/26, Bun; experimental): its
/// finalizer may run on any thread, without an env.
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
    // SAFETY: `hint` is the Arc<Region> reference leaked (Arc::into_raw) for this
    // SharedArrayBuffer; called once, from any thread, which Arc and Region (Send + Sync) allow.
    drop(unsafe { Arc::from_raw(hint.cast::<Region>().cast_const()) });
}

/// A SharedArrayBuffer over `instance`'s bytes, or `None` where the runtime cannot make one.
pub(crate) fn shared_buffer(env: sys::napi_env, instance: &Instance) -> Option<sys::napi_value> {
    let (create, js_ptr) = match (create_external_sab(), instance.region.js_ptr()) {
        (Some(f), Some(p)) if !instance.caged && !instance.region.is_closed() => (f, p),
        _ => return None,
    };
    if instance::force_copy() {
        return None; // what the memory cage answers: napi_no_external_buffers_allowed
    }
    let hint = Arc::into_raw(Arc::clone(&instance.region)).cast_mut();
    let mut value = ptr::null_mut();
    // SAFETY: same contract as the external ArrayBuffer in `instance::external_buffer`, except
    // that this buffer cannot be detached: the Region's bytes stay mapped until its finalizer
    // drops the Arc (`close()` never unmaps once one exists).
    let status = unsafe {
        create(
            env,
            js_ptr.as_ptr().cast(),
            instance.region.len(),
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
        // drop any exception of the failed call: the documented answer is `null`.
        let _ = take_pending_exception(env);
        return None;
    }
    instance.shared_made.set(true);
    Some(value)
}

/// Registers the hot-path callbacks (raw Node-API functions, see `hot.rs`).
#[napi(module_exports)]
pub fn register_hot(exports: Object, env: Env) -> Result<()> {
    hot::register(env.raw(), exports.raw())
}

/// Internal (the channel's liveness, docs/channel.md §6): this handle's participant token, proved
/// by an exclusive `flock` on the lock file `<name>.p<token>` beside the segment (see
/// `shm_core::liveness`). Released by `release()`, by the garbage collector, or by process death.
#[napi]
pub struct ParticipantLock {
    inner: shm_core::liveness::ParticipantLock,
}

#[napi]
impl ParticipantLock {
    /// Creates and locks a lock file for a fresh token of segment `name`.
    #[napi(factory)]
    pub fn acquire(env: Env, name: String) -> Result<ParticipantLock> {
        match shm_core::liveness::ParticipantLock::acquire(&name) {
            Ok(inner) => Ok(ParticipantLock { inner }),
            Err(err) => throw(env.raw(), from_core(err, &name)),
        }
    }

    /// The token (`1 … 2^31 − 1`).
    #[napi(getter)]
    pub fn token(&self) -> i32 {
        self.inner.token()
    }

    /// Removes the lock file and unlocks it; a second call does nothing.
    #[napi]
    pub fn release(&mut self) {
        self.inner.release()
    }
}

/// Internal: whether participant `token` of segment `name` is alive (its lock file is locked).
#[napi]
pub fn participant_alive(name: String, token: f64) -> bool {
    token.fract() == 0.0 && shm_core::liveness::participant_alive(&name, token as i64)
}

/// Internal: removes the lock files of `name`'s dead participants; returns how many.
#[napi]
pub fn remove_stale_participants(name: String) -> u32 {
    shm_core::liveness::remove_stale_locks(&name) as u32
}
