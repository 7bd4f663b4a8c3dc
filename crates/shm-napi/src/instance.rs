//! The native side of one `SharedMemory`: an [`Instance`] behind a JS `External`, and the
//! `ArrayBuffer`s made over its mapping.
//!
//! # Who owns what
//! * The `External` owns the `Box<Instance>`; its finalizer (GC, or environment teardown) frees
//!   it and drops the instance's `Arc<Region>`. Live instances are listed per thread in
//!   [`LIVE`], so a value that is not one of ours is refused before it is dereferenced.
//! * While an instance lives, an environment cleanup hook (removed by its finalizer) closes its
//!   region when the environment ends: the descriptor is released and pending waits end even on
//!   runtimes that never finalize a terminated worker's objects (Deno).
//! * Each external `ArrayBuffer` (the zero-copy `buffer`, the hidden atomics view) owns a
//!   [`BufferGuard`] (its finalize hint), which holds another `Arc<Region>`: the mapping stays
//!   until every buffer over it is gone or `close()` unmaps it after detaching them.
//! * A `SharedArrayBuffer` owns an `Arc<Region>` released by its env-less finalizer, which runs
//!   when the last agent drops it, on any thread.
//!
//! # Environment teardown and transferred buffers
//! Node calls an external `ArrayBuffer`'s finalizer when its environment (a worker) is torn
//! down, even if the buffer's memory was transferred (`transfer()`, `postMessage`) to another
//! thread that still uses it; Node then never calls it again. Unmapping there would pull the
//! memory from under that thread, and nothing tells the two cases apart at that point (Node
//! detaches the buffer itself first). So a finalizer of a user-visible buffer that runs while its
//! environment is stopping releases the OS handle and keeps the mapping for the rest of the
//! process: a bounded leak (address space; the segment's pages stay referenced), never a use
//! after unmap — unless the JS class marked the instance's `exit_mark` first: it does so, with a
//! plain memory write (Node may no longer call into native code by then), on the worker's 'exit'
//! event and when the instance is collected, if it sees the buffer still attached; no JS can run
//! after those points to transfer it. Only a `worker.terminate()` (no JS at all) leaves it unset. `close()` — or `using` — before a worker ends avoids it: it detaches the buffer
//! itself and unmaps at once (or keeps the mapping only if the buffer was transferred away).
//! Whether the environment is stopping is asked of Node-API in a way that runs no JS (a property
//! read fails once the environment can no longer run JS); the JS class enables it on Node.js and
//! Bun ([`set_teardown_guard`]); Deno does not finalize buffers at worker teardown.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::ffi::c_void;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, OnceLock};

use napi::sys;
use shm_core::{Access, Region};

use crate::errors::{self, JsErr, Kind};

pub struct Instance {
    pub region: Arc<Region>,
    pub name: String,
    pub access: Access,
    /// `buffer` is a V8-owned copy (the memory cage refused an external buffer).
    pub caged: bool,
    /// A `SharedArrayBuffer` was handed out: it cannot be detached, so `close()` never unmaps.
    pub shared_made: Cell<bool>,
    pub closed: Cell<bool>,
    /// Set to 1 by the JS class (a plain memory write, see `control_buffer`) when it has seen
    /// `buffer` still attached in this worker at a point after which no JS can transfer it: the
    /// worker's 'exit' event, or the instance's collection. Read by the buffer's finalizer.
    pub exit_mark: Arc<AtomicI32>,
    /// The ArrayBuffers made for this instance, which `close()` detaches (`buffers.rs`).
    pub made: crate::buffers::Made,
}

/// Hashes a pointer with one multiplication (Fibonacci hashing): the set below is asked on
/// every hot-path call, and SipHash would cost more than the rest of the lookup.
#[derive(Default)]
struct PtrHasher(u64);

impl std::hash::Hasher for PtrHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8 | u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_usize(&mut self, n: usize) {
        self.0 = (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

thread_local! {
    /// Instances alive on this thread (each environment lives on one thread).
    static LIVE: RefCell<HashSet<usize, std::hash::BuildHasherDefault<PtrHasher>>> =
        RefCell::new(HashSet::default());
}

/// `NODE_SHARED_MEM_FORCE_COPY=1`: behave as Electron's memory cage does.
pub fn force_copy() -> bool {
    static FORCE: OnceLock<bool> = OnceLock::new();
    *FORCE.get_or_init(|| std::env::var_os("NODE_SHARED_MEM_FORCE_COPY").is_some_and(|v| v == "1"))
}

unsafe extern "C" fn instance_teardown(arg: *mut c_void) {
    // SAFETY: the hook is removed by `finalize_instance` before the Box is freed.
    let inst = unsafe { &*arg.cast::<Instance>() };
    // Keep the mapping (buffers over it may still be alive somewhere; their finalizers decide).
    inst.region.close(false);
}

unsafe extern "C" fn finalize_instance(env: sys::napi_env, data: *mut c_void, _hint: *mut c_void) {
    LIVE.with(|l| l.borrow_mut().remove(&(data as usize)));
    // SAFETY: registered in `wrap` with exactly this function and argument; removing a hook that
    // already ran (teardown) is a no-op.
    unsafe { sys::napi_remove_env_cleanup_hook(env, Some(instance_teardown), data) };
    // SAFETY: `data` is the Box<Instance> leaked in `wrap`; Node-API calls this once.
    let inst = unsafe { Box::from_raw(data.cast::<Instance>()) };
    inst.made.release(env);
}

/// Wraps `instance` in a new `External`.
pub fn wrap(env: sys::napi_env, instance: Instance) -> napi::Result<sys::napi_value> {
    let raw = Box::into_raw(Box::new(instance));
    let mut external = ptr::null_mut();
    // SAFETY: env is live; `raw` stays valid until `finalize_instance` frees it.
    let status = unsafe {
        sys::napi_create_external(
            env,
            raw.cast(),
            Some(finalize_instance),
            ptr::null_mut(),
            &mut external,
        )
    };
    if status != sys::Status::napi_ok {
        // SAFETY: not handed to Node-API.
        drop(unsafe { Box::from_raw(raw) });
        return Err(errors::JsErr::new(
            Kind::Error,
            "ERR_SHM_INTERNAL",
            "napi_create_external failed",
        )
        .throw(env));
    }
    LIVE.with(|l| l.borrow_mut().insert(raw as usize));
    // SAFETY: `raw` stays valid until `finalize_instance`, which removes the hook first.
    unsafe { sys::napi_add_env_cleanup_hook(env, Some(instance_teardown), raw.cast()) };
    Ok(external)
}

/// The instance behind `handle`, if `handle` is one of ours and alive on this thread.
pub fn unwrap<'a>(env: sys::napi_env, handle: sys::napi_value) -> Option<&'a Instance> {
    let mut data = ptr::null_mut();
    // SAFETY: env/handle come from the current callback; a non-External gives an error status.
    if unsafe { sys::napi_get_value_external(env, handle, &mut data) } != sys::Status::napi_ok {
        return None;
    }
    if !LIVE.with(|l| l.borrow().contains(&(data as usize))) {
        return None;
    }
    // SAFETY: listed in LIVE, so it is a Box<Instance> of this thread not yet finalized; the
    // External (an argument of the current call) keeps it alive for the whole call.
    Some(unsafe { &*data.cast::<Instance>() })
}

static TEARDOWN_GUARD: AtomicBool = AtomicBool::new(false);

/// Enables the teardown guard (module docs); the JS class calls it on Node.js and Bun.
pub fn set_teardown_guard(on: bool) {
    TEARDOWN_GUARD.store(on, Ordering::Relaxed);
}

/// Whether `env` can no longer run JS (it is being torn down). Runs no JS: reading a property
/// of a fresh plain object only passes Node-API's "may this call run JS" check.
fn env_stopping(env: sys::napi_env) -> bool {
    let mut obj = ptr::null_mut();
    let mut v = ptr::null_mut();
    // SAFETY: called from a finalizer on the env's thread; the object is a local of a handle
    // scope the finalizer runs in; a non-ok status is the answer, not an error.
    unsafe {
        sys::napi_create_object(env, &mut obj) != sys::Status::napi_ok
            || sys::napi_get_named_property(env, obj, c"x".as_ptr(), &mut v) != sys::Status::napi_ok
    }
}

/// The finalize hint of one external `ArrayBuffer` over a region (module docs).
struct BufferGuard {
    region: Arc<Region>,
    /// `None`: never reachable from JavaScript, so never transferred (no such buffer is made
    /// since issue 17: the atomics view can be reached by a direct caller). `Some`: the
    /// instance's `exit_mark`.
    exit_mark: Option<Arc<AtomicI32>>,
}

unsafe extern "C" fn release_guard(env: sys::napi_env, _data: *mut c_void, hint: *mut c_void) {
    // SAFETY: `hint` is the Box<BufferGuard> leaked in `external_buffer`; called once.
    let guard = unsafe { Box::from_raw(hint.cast::<BufferGuard>()) };
    let seen_attached_last = guard
        .exit_mark
        .as_ref()
        .is_none_or(|m| m.load(Ordering::SeqCst) == 1);
    if !seen_attached_last && TEARDOWN_GUARD.load(Ordering::Relaxed) && env_stopping(env) {
        // The memory may live on in another thread: keep it mapped for good, release the handle.
        guard.region.close(false);
        std::mem::forget(Arc::clone(&guard.region));
    }
    // Dropping the guard drops its Arc<Region>.
}

/// Calls `napi_create_external_arraybuffer`, or — with `NODE_SHARED_MEM_FORCE_COPY=1` — gives
/// the answer Electron's memory cage gives, so the forced runs take Electron's code path.
unsafe fn create_external_arraybuffer(
    env: sys::napi_env,
    data: *mut c_void,
    len: usize,
    hint: *mut c_void,
    result: *mut sys::napi_value,
) -> sys::napi_status {
    if force_copy() {
        return sys::Status::napi_no_external_buffers_allowed;
    }
    // SAFETY: forwarded; the caller upholds napi_create_external_arraybuffer's contract.
    unsafe {
        sys::napi_create_external_arraybuffer(env, data, len, Some(release_guard), hint, result)
    }
}

/// An external `ArrayBuffer` over `len` bytes at `ptr` of `region`, guarded (module docs).
/// `Ok(None)` when the runtime forbids external buffers (the memory cage).
pub fn external_buffer(
    env: sys::napi_env,
    region: &Arc<Region>,
    ptr: *mut u8,
    exit_mark: Option<Arc<AtomicI32>>,
    name: &str,
) -> Result<Option<sys::napi_value>, JsErr> {
    let guard = Box::into_raw(Box::new(BufferGuard {
        region: Arc::clone(region),
        exit_mark,
    }));
    let mut ab = ptr::null_mut();
    // SAFETY: `ptr` is valid for `region.len()` bytes until the region unmaps, which happens
    // only after this buffer is detached by `close()` or after `release_guard` dropped the
    // guard's Arc (or never, see the module docs).
    let status = unsafe {
        create_external_arraybuffer(env, ptr.cast(), region.len(), guard.cast(), &mut ab)
    };
    if status == sys::Status::napi_ok {
        return Ok(Some(ab));
    }
    if status == sys::Status::napi_no_external_buffers_allowed {
        // Refused before taking ownership: the finalizer will never run.
        // SAFETY: `guard` came from Box::into_raw above and was not consumed.
        drop(unsafe { Box::from_raw(guard) });
        return Ok(None);
    }
    // Other failures (e.g. a length past the runtime's maximum) may or may not run the
    // finalizer later: leave the guard to it (a few bytes at worst, and the region is closed
    // by the caller).
    Err(JsErr::new(
        Kind::Range,
        "ERR_OUT_OF_RANGE",
        format!(
            "Cannot create an ArrayBuffer of {} bytes over shared memory '{name}' (status {status})",
            region.len()
        ),
    ))
}

/// Whether `ab` is an ArrayBuffer that is detached.
pub fn is_detached(env: sys::napi_env, ab: sys::napi_value) -> bool {
    let mut detached = false;
    // SAFETY: env/ab come from the current callback.
    unsafe { sys::napi_is_detached_arraybuffer(env, ab, &mut detached) };
    detached
}

/// Detaches `ab` if it is an attached ArrayBuffer; `false` if it was detached already.
pub fn detach(env: sys::napi_env, ab: sys::napi_value) -> bool {
    if is_detached(env, ab) {
        return false;
    }
    // SAFETY: env/ab come from the current callback; detaching is what `close()` promises.
    unsafe { sys::napi_detach_arraybuffer(env, ab) == sys::Status::napi_ok }
}

unsafe extern "C" fn release_mark(_env: sys::napi_env, _data: *mut c_void, hint: *mut c_void) {
    // SAFETY: `hint` is the Arc<AtomicI32> leaked in `control_buffer`; called once.
    drop(unsafe { Arc::from_raw(hint.cast::<AtomicI32>().cast_const()) });
}

/// A 4-byte external `ArrayBuffer` over `inst.exit_mark`, for the JS class to write 1 into; `None`
/// when caged (no external buffers exist then, so nothing needs the mark).
pub fn control_buffer(env: sys::napi_env, inst: &Instance) -> Option<sys::napi_value> {
    if inst.caged || force_copy() {
        return None;
    }
    let hint = Arc::into_raw(Arc::clone(&inst.exit_mark)).cast_mut();
    let mut ab = ptr::null_mut();
    // SAFETY: the AtomicI32 (4 bytes, 4-aligned) lives until `release_mark` drops this Arc,
    // which Node-API calls once the buffer is gone; JS only stores into it (Atomics).
    let status = unsafe {
        sys::napi_create_external_arraybuffer(
            env,
            hint.cast(),
            4,
            Some(release_mark),
            hint.cast(),
            &mut ab,
        )
    };
    if status != sys::Status::napi_ok {
        // SAFETY: not handed to Node-API.
        drop(unsafe { Arc::from_raw(hint.cast_const()) });
        return None;
    }
    Some(ab)
}
