//! The native side of one `SharedMemory`: an [`Instance`] behind a JS `External`, and the
//! `ArrayBuffer`s made over its mapping.
//!
//! # Who owns what
//! * The `External` owns the `Box<Instance>`; its finalizer (GC, or environment teardown) frees
//!   it and drops the instance's `Arc<Region>`. Live instances are listed per thread in
//!   [`LIVE`], so a value that is not one of ours is refused before it is dereferenced.
//! * While an instance lives, an environment cleanup hook (removed by its finalizer) closes its
//!   region when the environment ends, keeping the mapping: the descriptor is released and
//!   pending waits end even on runtimes that never finalize a terminated worker's objects (Deno).
//! * Each external `ArrayBuffer` (the zero-copy `buffer`, the hidden atomics view) owns a
//!   [`BufferGuard`] (its finalize hint), which holds another `Arc<Region>`: the mapping stays
//!   until every buffer over it is gone or `close()` unmaps it after detaching them.
//! * The instance holds its zero-copy `buffer` by a strong reference (`held`) that its finalizer
//!   deletes: the buffer outlives its instance by at least one collection (see below). It holds
//!   its newest atomics view's buffer the same way (`held_view`): a view collected with its
//!   instance would look moved to its witness at a worker's end and keep its mapping.
//! * Each zero-copy `buffer` and atomics view also has a [`Witness`]: a 1-byte external
//!   `ArrayBuffer` over a static byte (never freed), made right after it, kept alive by a strong
//!   reference that its `BufferGuard` holds (and deletes when the buffer is finalized); the
//!   witness holds a weak reference to the buffer and the `seen` mark both share. No JS is given
//!   the witness (the in-process inspector can still find it: see below).
//! * A `SharedArrayBuffer` owns an `Arc<Region>` released by its env-less finalizer, which runs
//!   when the last agent drops it, on any thread.
//!
//! # Environment teardown and moved buffers
//! Node.js (and Bun) call an external `ArrayBuffer`'s finalizer when its environment (a worker)
//! is torn down, even if the buffer's memory was moved (`transfer()`, then `postMessage`) to
//! another thread that still uses it; Node detaches the buffer first, and then never calls the
//! finalizer again (`CallbackInfo::OnBackingStoreFree` in src/node_buffer.cc ignores the backing
//! store's release once the teardown ran). Unmapping there could pull the memory from under that
//! thread, and the finalizer alone cannot tell the two cases apart. The witness can: Node finalizes
//! external buffers at teardown newest first (`cleanable_queue_` / the cleanup hooks, both LIFO),
//! after every JS listener ('exit' included) has run and with JS disallowed, so the witness is
//! finalized just before its buffer, when nothing can move the buffer any more, and records
//! whether it is still attached here (`ATTACHED`: never moved, safe to unmap) or not (`GONE`:
//! moved or collected). The buffer's finalizer then unmaps on `ATTACHED`, keeps the mapping for
//! the rest of the process on `GONE` (releasing the OS handle: a bounded leak of address space,
//! never a use after unmap), and with no verdict (a plain collection while the environment runs,
//! or a host that finalized in another order) keeps it only if the environment is stopping.
//! Whether it is stopping is asked of Node-API in a way that runs no JS: a read, from a fresh
//! object, of a property keyed by a symbol made just then, which Node-API refuses once the
//! environment can no longer run JS and which no getter of anyone's can intercept (a string key
//! would reach a user's `Object.prototype` getter). A verdict counts only if the witness was
//! finalized while the environment was stopping: the inspector (`Runtime.queryObjects`) can hand
//! the witness to JS, which could move or drop it so that it is finalized while the worker runs
//! and JS can still move the buffer afterwards; such a witness records nothing, and its buffer's
//! finalizer falls back on "keep if stopping". The witness's byte is a static for the same reason:
//! a witness moved to another thread outlives its finalizer there. No listener order, global or
//! `worker.terminate()` changes the outcome.
//!
//! `GONE` also covers a buffer already collected when the witness looks: a moved buffer's
//! detached husk and a never-moved buffer whose release Node had queued (its backing store freed)
//! but not yet delivered when the worker ended look the same, and only the first case must keep
//! the mapping. `held` makes the second rare: a buffer cannot be collected in the same collection
//! as its instance (the usual way both go at once in a worker's last moments), only in a later
//! one. What is left — two collections, then the worker's end before the queued release is
//! delivered — keeps a mapping (a leak, never an unmap); we have not seen it happen.
//!
//! Memory moved out of a worker that then ends is therefore never unmapped on Node.js, even once
//! the receiver collects it: no Node-API call reports that release after the teardown (a
//! `SharedArrayBuffer` from `sharedBuffer` has an env-less finalizer and is released then). While
//! the worker runs, the receiver's collection does reach the finalizer (on the worker's thread),
//! which releases it.
//!
//! Bun calls a buffer's (and a witness's) finalizer on whichever thread frees its memory, with the
//! env of the thread that made it: a buffer moved to another thread and collected there is
//! finalized on that thread, maybe while its own thread runs JS. Each guard and witness records
//! the thread it was made on ([`this_thread`]); a finalizer running on another thread calls no
//! Node-API (that env belongs to another thread) and decides nothing: the memory was freed by the
//! thread that held its last reference, so no agent can reach the mapping any more and dropping
//! the guard's `Arc<Region>` is safe, as on Deno. (Bun 1.4.5 itself at times crashes around such
//! an off-thread finalizer while the owning thread runs, with no frame of ours on the stack: a
//! known limitation of the lifecycle suite, README Limits.)
//!
//! Deno calls a buffer's finalizer from its V8 backing store's deleter: only once no agent holds
//! the memory, maybe on another thread, maybe after the env is gone. There the finalizer must
//! not call Node-API and need not decide anything: it drops its `Arc<Region>` (no witness is
//! made). Which kind of host this is comes from what the executable exports
//! ([`node_like_host`]), never from JS globals.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::ffi::c_void;
use std::ptr;
use std::sync::atomic::{AtomicI32, AtomicU64, AtomicU8, Ordering};
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
    /// Strong reference to the zero-copy `buffer` (null when caged), deleted by the instance's
    /// finalizer: the buffer outlives the instance by at least one collection (module docs).
    pub held: Cell<sys::napi_ref>,
    /// Strong reference to the newest atomics view's `ArrayBuffer` (null: none), for the same
    /// reason as `held`: collected with its instance, a view would look moved to its witness at
    /// a worker's teardown and keep its mapping. Replaced (the older one deleted) by each new
    /// view, so a caller making views in a loop holds one at most; deleted by the finalizer.
    pub held_view: Cell<sys::napi_ref>,
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
    // SAFETY: `data` is the live Box<Instance> (freed below); `held` is our strong reference,
    // deleted once, on the env's thread.
    let held = unsafe { (*data.cast::<Instance>()).held.replace(ptr::null_mut()) };
    if !held.is_null() {
        // SAFETY: as above.
        unsafe { sys::napi_delete_reference(env, held) };
    }
    // SAFETY: as above, for `held_view`.
    let held_view = unsafe {
        (*data.cast::<Instance>())
            .held_view
            .replace(ptr::null_mut())
    };
    if !held_view.is_null() {
        // SAFETY: as above.
        unsafe { sys::napi_delete_reference(env, held_view) };
    }
    // SAFETY: registered in `wrap` with exactly this function and argument; removing a hook that
    // already ran (teardown) is a no-op.
    unsafe { sys::napi_remove_env_cleanup_hook(env, Some(instance_teardown), data) };
    // SAFETY: `data` is the Box<Instance> leaked in `wrap`; Node-API calls this once.
    let inst = unsafe { Box::from_raw(data.cast::<Instance>()) };
    inst.made.release(env);
}

/// Holds `ab` (a new atomics view's buffer) until the instance is finalized or a newer view
/// replaces it (`Instance::held_view`).
pub fn hold_view(env: sys::napi_env, inst: &Instance, ab: sys::napi_value) {
    let mut r = ptr::null_mut();
    // SAFETY: env/ab are live values of the current callback. A failure leaves no reference: the
    // view is then only as long-lived as its holder (a kept mapping at worst, never an unmap).
    if unsafe { sys::napi_create_reference(env, ab, 1, &mut r) } != sys::Status::napi_ok {
        r = ptr::null_mut();
    }
    let old = inst.held_view.replace(r);
    if !old.is_null() {
        // SAFETY: our strong reference, made here on this env's thread, deleted once.
        unsafe { sys::napi_delete_reference(env, old) };
    }
}

/// Wraps `instance` in a new `External`; holds `buffer` (the zero-copy one) until the instance
/// is finalized.
pub fn wrap(
    env: sys::napi_env,
    instance: Instance,
    buffer: Option<sys::napi_value>,
) -> napi::Result<sys::napi_value> {
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
    if let Some(b) = buffer {
        let mut held = ptr::null_mut();
        // SAFETY: env/b are live values of the current callback; `raw` is valid (see above). A
        // failure leaves `held` null: the buffer is then only as long-lived as the JS instance.
        unsafe {
            if sys::napi_create_reference(env, b, 1, &mut held) == sys::Status::napi_ok {
                (*raw).held.set(held);
            }
        }
    }
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

/// Whether `env` can no longer run JS (it is being torn down). Runs no JS: it reads a property
/// keyed by a symbol made just now from a fresh plain object. Node-API refuses the read (with
/// napi_pending_exception or napi_cannot_run_js) when the environment cannot run JS; otherwise
/// the lookup walks the object and `Object.prototype`, where no getter, setter or proxy of
/// anyone's can be keyed by a symbol that did not exist before this call (and `Object.prototype`'s
/// own prototype cannot be changed). (A string key such as "x" would meet a user's
/// `Object.prototype.x` getter: user JS inside a finalizer.) Only on the env's thread.
fn env_stopping(env: sys::napi_env) -> bool {
    let mut obj = ptr::null_mut();
    let mut key = ptr::null_mut();
    let mut v = ptr::null_mut();
    // SAFETY: called from a finalizer on the env's thread (checked by the callers); the object
    // and the symbol are locals of the handle scope the finalizer runs in; a non-ok status is the
    // answer, not an error.
    unsafe {
        sys::napi_create_object(env, &mut obj) != sys::Status::napi_ok
            || sys::napi_create_symbol(env, ptr::null_mut(), &mut key) != sys::Status::napi_ok
            || sys::napi_get_property(env, obj, key, &mut v) != sys::Status::napi_ok
    }
}

thread_local! {
    /// This thread's token (0: not drawn yet); const-initialized without a destructor, so it can
    /// be read even while the thread's other thread-locals are being destroyed.
    static TOKEN: Cell<u64> = const { Cell::new(0) };
}

/// A number unique to the current thread for the life of the process (never reused, unlike a
/// thread-local's address), to tell a finalizer that runs on its env's thread from one that does
/// not (Bun: on whichever thread frees the memory).
fn this_thread() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    TOKEN.with(|t| {
        if t.get() == 0 {
            t.set(NEXT.fetch_add(1, Ordering::Relaxed));
        }
        t.get()
    })
}

/// Whether the host finalizes external buffers as Node.js and Bun do, in two respects:
/// * **at teardown**: when an environment is torn down it finalizes every external buffer made
///   there, even one whose memory was moved to another thread that still uses it (so the
///   finalizer must decide: the witness);
/// * **on which thread**: Node.js always finalizes on the env's thread, with a usable env; Bun on
///   whichever thread frees the memory (the finalizer checks the thread before any Node-API call).
///
/// Otherwise (Deno) a buffer's finalizer is its V8 backing store's deleter: it runs once no agent
/// holds the memory, on any thread, maybe after the env is gone, so it must not call Node-API —
/// and need not, as dropping the mapping then is always safe. Told natively, from what the host
/// executable exports (V8's embedder API or libuv, which Deno does not export), never from JS
/// globals any JS could change.
fn node_like_host() -> bool {
    static NODE_LIKE: OnceLock<bool> = OnceLock::new();
    *NODE_LIKE.get_or_init(|| {
        [
            // v8::ArrayBuffer::GetBackingStore(), Itanium (Linux, macOS) and MSVC (Windows).
            c"_ZN2v811ArrayBuffer15GetBackingStoreEv",
            c"?GetBackingStore@ArrayBuffer@v8@@QEAA?AV?$shared_ptr@VBackingStore@v8@@@std@@XZ",
            c"uv_accept",
        ]
        .iter()
        .any(|s| shm_core::runtime_symbol(s).is_some())
    })
}

/// [`Witness::seen`] values.
const UNSEEN: i32 = 0;
/// The witness was finalized, while its environment was stopping, with the buffer still attached
/// there.
const ATTACHED: i32 = 1;
/// The witness was finalized, while its environment was stopping, with the buffer detached
/// (transferred, or `close()`d) or already collected.
const GONE: i32 = 2;

/// The one byte behind every witness `ArrayBuffer`. Never freed: a witness moved to another
/// thread (JS can reach it through the inspector) outlives its finalizer there, and may still
/// read and write its byte; that then touches this static, never freed memory. Native code never
/// reads it.
static WITNESS_BYTE: AtomicU8 = AtomicU8::new(0);

/// A user-visible buffer's witness (module docs): a 1-byte external `ArrayBuffer` made right
/// after the buffer, that only a strong reference held by the buffer's [`BufferGuard`] keeps
/// alive. Its finalizer records whether the buffer is still attached at that moment — if that
/// moment is the environment's teardown.
struct Witness {
    /// Weak reference to the user-visible buffer.
    buffer: sys::napi_ref,
    seen: Arc<AtomicI32>,
    /// [`this_thread`] of the env's thread.
    thread: u64,
}

unsafe extern "C" fn witness_finalized(env: sys::napi_env, _data: *mut c_void, hint: *mut c_void) {
    // SAFETY: `hint` is the Box<Witness> leaked in `make_witness`; the runtime calls this once.
    let w = unsafe { Box::from_raw(hint.cast::<Witness>()) };
    if w.thread != this_thread() {
        // Bun: the witness was moved to another thread, which collected it. No Node-API here
        // (the env is another thread's: the weak reference is leaked) and no verdict.
        return;
    }
    let mut scope = ptr::null_mut();
    let mut ab = ptr::null_mut();
    let mut detached = true;
    // SAFETY: a finalizer on the env's thread (checked above); none of these calls runs JS
    // (`env_stopping` included); the weak reference is ours, and deleted here once. A failing
    // call leaves `ab` null or `detached` true: GONE, which keeps the mapping (the safe answer).
    let stopping = unsafe {
        let scoped = sys::napi_open_handle_scope(env, &mut scope) == sys::Status::napi_ok;
        if sys::napi_get_reference_value(env, w.buffer, &mut ab) == sys::Status::napi_ok
            && !ab.is_null()
        {
            sys::napi_is_detached_arraybuffer(env, ab, &mut detached);
        }
        sys::napi_delete_reference(env, w.buffer);
        let stopping = env_stopping(env);
        if scoped {
            sys::napi_close_handle_scope(env, scope);
        }
        stopping
    };
    // A verdict counts only once no JS can move the buffer any more. Before that the witness is
    // collected only after its buffer's finalizer (which then reads nothing), or because JS got
    // hold of it (the inspector) and moved or dropped it: then there is no verdict, and the
    // buffer's finalizer falls back on `env_stopping`.
    if stopping {
        w.seen.store(
            if ab.is_null() || detached {
                GONE
            } else {
                ATTACHED
            },
            Ordering::SeqCst,
        );
    }
}

/// Makes `buffer`'s witness; returns the strong reference that keeps it alive, or null if the
/// runtime refused (then the guard falls back on [`env_stopping`]).
fn make_witness(
    env: sys::napi_env,
    buffer: sys::napi_value,
    seen: &Arc<AtomicI32>,
) -> sys::napi_ref {
    let mut weak = ptr::null_mut();
    // SAFETY: env/buffer come from the current callback; a weak reference (count 0).
    if unsafe { sys::napi_create_reference(env, buffer, 0, &mut weak) } != sys::Status::napi_ok {
        return ptr::null_mut();
    }
    let w = Box::into_raw(Box::new(Witness {
        buffer: weak,
        seen: Arc::clone(seen),
        thread: this_thread(),
    }));
    let mut ab = ptr::null_mut();
    let mut strong = ptr::null_mut();
    // SAFETY: the byte is a static, valid for the life of the process whoever holds the witness
    // and whenever it is finalized; native code never reads it (JS writes to it are harmless).
    let made = unsafe {
        sys::napi_create_external_arraybuffer(
            env,
            WITNESS_BYTE.as_ptr().cast(),
            1,
            Some(witness_finalized),
            w.cast(),
            &mut ab,
        )
    } == sys::Status::napi_ok;
    let held = made && {
        // SAFETY: `ab` is a live local of this callback.
        let status = unsafe { sys::napi_create_reference(env, ab, 1, &mut strong) };
        status == sys::Status::napi_ok
    };
    if held {
        return strong;
    }
    // SAFETY: `w` came from Box::into_raw above; if Node-API took it, its finalizer cannot run
    // before this callback returns (finalizers run from the event loop or at teardown), and
    // this thread is the only one that touches it.
    unsafe {
        if made {
            // Nothing keeps this witness alive: its verdict, recorded whenever it is collected,
            // would mean nothing. Point it at a mark nobody reads.
            (*w).seen = Arc::new(AtomicI32::new(UNSEEN));
        } else {
            // Not handed to Node-API: ours again.
            sys::napi_delete_reference(env, (*w).buffer);
            drop(Box::from_raw(w));
        }
    }
    ptr::null_mut()
}

/// The finalize hint of one external `ArrayBuffer` over a region (module docs).
struct BufferGuard {
    region: Arc<Region>,
    /// `None`: never reachable from JavaScript, so never transferred (no such buffer is made
    /// since issue 17: the atomics view can be reached by a direct caller of the raw binding, so
    /// it has a witness like `buffer`). `Some`: what the buffer's witness saw.
    seen: Option<Arc<AtomicI32>>,
    /// Strong reference to the witness (null: none).
    witness: sys::napi_ref,
    /// [`this_thread`] of the env's thread (the one that made the buffer).
    thread: u64,
}

unsafe extern "C" fn release_guard(env: sys::napi_env, _data: *mut c_void, hint: *mut c_void) {
    // SAFETY: `hint` is the Box<BufferGuard> leaked in `external_buffer`; called once.
    let guard = unsafe { Box::from_raw(hint.cast::<BufferGuard>()) };
    if !node_like_host() {
        return; // no agent holds the memory any more: drop the mapping (no Node-API here)
    }
    if guard.thread != this_thread() {
        // Bun: the buffer was moved to another thread, and this one freed its memory — the last
        // reference to it, so no agent can reach the mapping any more: drop our part of it, as
        // on Deno. `env` is the owning thread's, busy or gone: no Node-API here (the strong
        // reference to the witness is leaked; the witness goes at its env's teardown).
        return;
    }
    if !guard.witness.is_null() {
        // The witness may go now (if the environment still runs, it is collected later and
        // records no verdict).
        // SAFETY: our strong reference, deleted once, on the env's thread (checked above).
        unsafe { sys::napi_delete_reference(env, guard.witness) };
    }
    let keep = match guard.seen.as_ref().map(|s| s.load(Ordering::SeqCst)) {
        None => false,
        Some(ATTACHED) => false,
        Some(GONE) => true,
        // No verdict: collected while its environment runs, a witness JS got hold of and let go
        // early, or a runtime that finalized the witness after the buffer (or none made): keep
        // it if the environment is stopping.
        Some(_) => env_stopping(env),
    };
    if keep {
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
    seen: Option<Arc<AtomicI32>>,
    name: &str,
) -> Result<Option<sys::napi_value>, JsErr> {
    let witnessed = seen.is_some();
    let guard = Box::into_raw(Box::new(BufferGuard {
        region: Arc::clone(region),
        seen,
        witness: ptr::null_mut(),
        thread: this_thread(),
    }));
    let mut ab = ptr::null_mut();
    // SAFETY: `ptr` is valid for `region.len()` bytes until the region unmaps, which happens
    // only after this buffer is detached by `close()` or after `release_guard` dropped the
    // guard's Arc (or never, see the module docs).
    let status = unsafe {
        create_external_arraybuffer(env, ptr.cast(), region.len(), guard.cast(), &mut ab)
    };
    if status == sys::Status::napi_ok {
        if witnessed && node_like_host() {
            // Made right after the buffer, so finalized before it at teardown (module docs).
            // SAFETY: Node-API owns the guard now but cannot finalize it before this callback
            // returns; only this thread touches it.
            unsafe {
                let seen = (*guard).seen.as_ref().map(Arc::clone);
                if let Some(seen) = seen {
                    (*guard).witness = make_witness(env, ab, &seen);
                }
            }
        }
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
