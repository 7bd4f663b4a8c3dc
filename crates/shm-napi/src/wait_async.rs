//! `waitAsync`: the wait runs on a thread of its own (never the libuv pool, whose 4 threads a
//! few long waits would starve), and the result comes back to the JS thread through a raw
//! Node-API thread-safe function that settles a promise.
//!
//! # Who owns what
//! * The waiter thread owns an `Arc<Wait>` (the region, the cancel flag, the tsfn slot) and the
//!   one thread count of the tsfn, which it gives back with `napi_release_threadsafe_function`
//!   after queuing the result — or loses when Node answers `napi_closing`, after which it must
//!   not touch the tsfn again (Node-API contract).
//! * The tsfn's finalizer owns the other `Arc<Wait>`. Node runs it on the JS thread when the
//!   tsfn is destroyed: normally after the waiter released it; at environment teardown
//!   (`worker.terminate()`, worker exit) while the waiter may still be blocked. It empties the
//!   tsfn slot under the mutex the waiter holds while it calls the tsfn, so the waiter never
//!   uses a destroyed tsfn; if the wait was still pending it cancels it (flag + wake-up) and
//!   joins the thread, so no thread, mapping or descriptor outlives the environment because of
//!   a pending wait.
//! * The pending call keeps the event loop alive (the tsfn is ref'd), like a pending socket
//!   read; `close()` wakes the waiter and the promise rejects with `ERR_SHM_CLOSED`.

use std::ffi::c_void;
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use napi::sys;
use shm_core::Region;

use crate::errors::{self, JsErr, Kind};
use crate::instance::Instance;

/// Raw Node-API handles. Node-API documents `napi_threadsafe_function` calls as usable from
/// any thread and a `napi_deferred` as an opaque token; the deferred is only *settled* on the
/// JS thread, in `settle`.
struct Handles {
    tsfn: sys::napi_threadsafe_function,
    deferred: sys::napi_deferred,
}
// SAFETY: see the struct's doc.
unsafe impl Send for Handles {}

struct Wait {
    region: Arc<Region>,
    cancel: AtomicBool,
    /// `Some` until the waiter has handed its result over, or the tsfn was destroyed.
    handles: Mutex<Option<Handles>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

struct Done {
    deferred: sys::napi_deferred,
    result: Result<&'static str, JsErr>,
}

unsafe extern "C" fn settle(
    env: sys::napi_env,
    _js_callback: sys::napi_value,
    _context: *mut c_void,
    data: *mut c_void,
) {
    // SAFETY: `data` is the Box<Done> leaked by the waiter thread for exactly this one call.
    let done = unsafe { Box::from_raw(data.cast::<Done>()) };
    if env.is_null() {
        // The environment is being torn down: nobody is left to see the result.
        return;
    }
    // SAFETY: we are on the JS thread of `env` (Node-API calls this from the loop), and the
    // deferred belongs to it and is settled exactly once.
    unsafe {
        match &done.result {
            Ok(s) => sys::napi_resolve_deferred(env, done.deferred, errors::js_string(env, s)),
            Err(e) => sys::napi_reject_deferred(env, done.deferred, e.to_value(env)),
        };
    }
}

unsafe extern "C" fn tsfn_finalized(_env: sys::napi_env, data: *mut c_void, _hint: *mut c_void) {
    // SAFETY: `data` is the Arc<Wait> leaked (Arc::into_raw) for the tsfn; Node calls this once.
    let wait = unsafe { Arc::from_raw(data.cast::<Wait>().cast_const()) };
    let pending = wait
        .handles
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .is_some();
    let thread = wait.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
    let Some(thread) = thread else { return };
    if pending {
        // Teardown while the waiter may sleep: make it leave now. It may still be spinning or
        // just before its kernel call, where one wake-up would miss it: repeat until it is out.
        wait.cancel.store(true, Ordering::SeqCst);
        while !thread.is_finished() {
            wait.region.wake_waiters();
            std::thread::sleep(Duration::from_micros(50));
        }
    }
    let _ = thread.join();
}

/// Starts the wait and returns the promise (or `Err` with a JS exception thrown).
pub fn start(
    env: sys::napi_env,
    inst: &Instance,
    offset: usize,
    expected: i32,
    timeout: Option<Duration>,
) -> napi::Result<sys::napi_value> {
    let mut deferred = ptr::null_mut();
    let mut promise = ptr::null_mut();
    // SAFETY: env is the live env of this callback.
    if unsafe { sys::napi_create_promise(env, &mut deferred, &mut promise) } != sys::Status::napi_ok
    {
        return Err(JsErr::new(
            Kind::Error,
            "ERR_SHM_WAIT",
            "waitAsync(): could not create a promise",
        )
        .throw(env));
    }
    let reject = |e: JsErr| {
        // SAFETY: settles the promise we just made, on the JS thread.
        unsafe { sys::napi_reject_deferred(env, deferred, e.to_value(env)) };
        Ok(promise)
    };
    let wait = Arc::new(Wait {
        region: Arc::clone(&inst.region),
        cancel: AtomicBool::new(false),
        handles: Mutex::new(None),
        thread: Mutex::new(None),
    });
    let finalize_data = Arc::into_raw(Arc::clone(&wait)).cast_mut();
    let mut tsfn = ptr::null_mut();
    // SAFETY: no JS function (`settle` does the work), one initial thread (the waiter), an
    // unbounded queue (so a call never blocks), and `tsfn_finalized` owning `finalize_data`.
    let status = unsafe {
        sys::napi_create_threadsafe_function(
            env,
            ptr::null_mut(),
            ptr::null_mut(),
            errors::js_string(env, "node-shared-mem:waitAsync"),
            0,
            1,
            finalize_data.cast(),
            Some(tsfn_finalized),
            ptr::null_mut(),
            Some(settle),
            &mut tsfn,
        )
    };
    if status != sys::Status::napi_ok {
        // SAFETY: not handed to Node-API.
        drop(unsafe { Arc::from_raw(finalize_data.cast_const()) });
        return reject(JsErr::new(
            Kind::Error,
            "ERR_SHM_WAIT",
            "waitAsync(): could not create a thread-safe function",
        ));
    }
    *wait.handles.lock().unwrap_or_else(|e| e.into_inner()) = Some(Handles { tsfn, deferred });
    let name = inst.name.clone();
    let waiter = Arc::clone(&wait);
    let spawned = std::thread::Builder::new()
        .name("shm-waitAsync".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            let result = waiter
                .region
                .wait_interruptible(offset, expected, timeout, None, &mut || {
                    waiter.cancel.load(Ordering::SeqCst)
                })
                .map(|o| o.as_str())
                .map_err(|e| errors::from_region(e, "waitAsync", &name));
            let mut slot = waiter.handles.lock().unwrap_or_else(|e| e.into_inner());
            let Some(h) = slot.take() else {
                return; // the tsfn is gone (teardown): nobody to tell
            };
            let data = Box::into_raw(Box::new(Done {
                deferred: h.deferred,
                result,
            }));
            // SAFETY: the tsfn is alive: its finalizer empties `slot` (under this lock) before
            // Node frees it, and we hold its one thread count.
            let status = unsafe {
                sys::napi_call_threadsafe_function(
                    h.tsfn,
                    data.cast(),
                    sys::ThreadsafeFunctionCallMode::nonblocking,
                )
            };
            if status == sys::Status::napi_ok {
                // SAFETY: gives back our thread count, exactly once; no use of the tsfn after.
                unsafe {
                    sys::napi_release_threadsafe_function(
                        h.tsfn,
                        sys::ThreadsafeFunctionReleaseMode::release,
                    )
                };
            } else {
                // `napi_closing`: Node took our thread count; the tsfn must not be used again.
                // SAFETY: `data` was not queued.
                drop(unsafe { Box::from_raw(data) });
            }
        });
    match spawned {
        Ok(handle) => {
            // The finalizer runs on this (JS) thread, so it cannot run before this store.
            *wait.thread.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle);
            Ok(promise)
        }
        Err(err) => {
            wait.handles
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            // SAFETY: on the JS thread; the tsfn was created above and never used; releasing
            // its one thread count lets Node destroy it (and run `tsfn_finalized`).
            unsafe {
                sys::napi_release_threadsafe_function(
                    tsfn,
                    sys::ThreadsafeFunctionReleaseMode::release,
                )
            };
            reject(errors::system("pthread_create", &err, "waitAsync"))
        }
    }
}
