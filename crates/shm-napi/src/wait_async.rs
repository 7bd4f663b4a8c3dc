//! `waitAsync`: the wait runs on a thread of its own (never the libuv pool, whose 4 threads a
//! few long waits would starve), and the result comes back to the JS thread through a raw
//! Node-API thread-safe function that settles a promise.
//!
//! The pending call keeps the event loop alive, like a pending socket read; `close()` wakes the
//! waiter (the promise then rejects with `ERR_SHM_CLOSED`), so it never holds the process after
//! `close()`.

use std::ffi::c_void;
use std::ptr;
use std::sync::Arc;
use std::time::Duration;

use napi::sys;
use shm_core::Region;

use crate::errors::{self, JsErr, Kind};

struct Done {
    deferred: sys::napi_deferred,
    result: Result<&'static str, JsErr>,
}

/// Raw Node-API handles moved to the waiter thread. Node-API documents both
/// `napi_threadsafe_function` calls and a `napi_deferred` passed back through them as usable
/// from any thread; the deferred is only *settled* on the JS thread, in `settle`.
struct SendHandles {
    tsfn: sys::napi_threadsafe_function,
    deferred: sys::napi_deferred,
}
// SAFETY: see the struct's doc: the thread only hands the handles back through the tsfn.
unsafe impl Send for SendHandles {}

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
            Ok(s) => {
                sys::napi_resolve_deferred(env, done.deferred, errors::js_string(env, s));
            }
            Err(e) => {
                sys::napi_reject_deferred(env, done.deferred, e.to_value(env));
            }
        }
    }
}

/// Starts the wait and returns the promise.
pub fn start(
    env: sys::napi_env,
    region: Arc<Region>,
    name: String,
    offset: usize,
    expected: i32,
    timeout: Option<Duration>,
) -> napi::Result<sys::napi_value> {
    let mut deferred = ptr::null_mut();
    let mut promise = ptr::null_mut();
    // SAFETY: env is the live env of this callback.
    let status = unsafe { sys::napi_create_promise(env, &mut deferred, &mut promise) };
    if status != sys::Status::napi_ok {
        return Err(napi::Error::new(
            napi::Status::GenericFailure,
            "napi_create_promise failed",
        ));
    }
    let mut tsfn = ptr::null_mut();
    // SAFETY: no JS function (call_js does the work), one initial thread (the waiter), no
    // context or finalizer; `settle` matches napi_threadsafe_function_call_js.
    let status = unsafe {
        sys::napi_create_threadsafe_function(
            env,
            ptr::null_mut(),
            ptr::null_mut(),
            errors::js_string(env, "node-shared-mem:waitAsync"),
            0,
            1,
            ptr::null_mut(),
            None,
            ptr::null_mut(),
            Some(settle),
            &mut tsfn,
        )
    };
    if status != sys::Status::napi_ok {
        let e = JsErr::new(
            Kind::Error,
            "ERR_SHM_WAIT",
            "waitAsync(): could not create a thread-safe function",
        );
        // SAFETY: settles the promise we just made, on the JS thread.
        unsafe { sys::napi_reject_deferred(env, deferred, e.to_value(env)) };
        return Ok(promise);
    }
    let handles = SendHandles { tsfn, deferred };
    let spawned = std::thread::Builder::new()
        .name("shm-waitAsync".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            let handles = handles;
            let result = region
                .wait(offset, expected, timeout)
                .map(|o| o.as_str())
                .map_err(|e| errors::from_region(e, "waitAsync", &name));
            drop(region);
            let data = Box::into_raw(Box::new(Done {
                deferred: handles.deferred,
                result,
            }));
            // SAFETY: the tsfn is live (we hold its one thread count until the release below).
            let status = unsafe {
                sys::napi_call_threadsafe_function(
                    handles.tsfn,
                    data.cast(),
                    sys::ThreadsafeFunctionCallMode::blocking,
                )
            };
            if status != sys::Status::napi_ok {
                // Not queued (the environment is closing): reclaim the message.
                // SAFETY: `data` was not handed to Node-API.
                drop(unsafe { Box::from_raw(data) });
            }
            // SAFETY: releases the thread count acquired at creation, exactly once.
            unsafe {
                sys::napi_release_threadsafe_function(
                    handles.tsfn,
                    sys::ThreadsafeFunctionReleaseMode::release,
                )
            };
        });
    if let Err(err) = spawned {
        // The closure (and the handles in it) was dropped unused: release and reject here.
        // SAFETY: on the JS thread; the tsfn and deferred were created above and not used.
        unsafe {
            sys::napi_release_threadsafe_function(
                tsfn,
                sys::ThreadsafeFunctionReleaseMode::release,
            );
            let e = errors::system("pthread_create", &err, "waitAsync");
            sys::napi_reject_deferred(env, deferred, e.to_value(env));
        }
    }
    Ok(promise)
}
