//! Raw Node-API callbacks for the per-call operations: no class dispatch, no allocation. The
//! JS class has already checked every argument (types, integers, ranges, closed); these still
//! refuse anything out of bounds, so a direct caller can get an error but never bad memory
//! (`__test__/hostile.spec.ts` calls each of them with hostile arguments). None of them takes an
//! `ArrayBuffer` from JavaScript: the caged copies use the instance's own buffer and `close()`
//! detaches what native code made (`buffers.rs`); no view over a read-only mapping is handed out.
//!
//! Every callback but `pageOffset` takes the instance's `External` handle first. `pageOffset`
//! takes a typed array from JavaScript and reads only where its bytes are, never a byte of them.

use std::ptr;
use std::time::Duration;

use napi::sys;
use shm_core::{Access, Region, RegionError};

use crate::errors::{self, from_region, JsErr, Kind};
use crate::instance::{self, Instance};
use crate::wait_async;

type Callback = unsafe extern "C" fn(sys::napi_env, sys::napi_callback_info) -> sys::napi_value;

pub fn register(env: sys::napi_env, exports: sys::napi_value) -> napi::Result<()> {
    let table: [(&std::ffi::CStr, Callback); 13] = [
        (c"copyFrom", copy_from),
        (c"copyTo", copy_to),
        (c"load", load),
        (c"store", store),
        (c"add", add),
        (c"compareExchange", compare_exchange),
        (c"wait", wait),
        (c"waitAsync", wait_async_cb),
        (c"notify", notify),
        (c"atomicsView", atomics_view),
        (c"sharedBuffer", shared_buffer),
        (c"close", close),
        (c"pageOffset", page_offset),
    ];
    for (name, cb) in table {
        let mut f = ptr::null_mut();
        // SAFETY: env/exports come from module registration; `name` is NUL-terminated.
        let status = unsafe {
            sys::napi_create_function(
                env,
                name.as_ptr(),
                usize::MAX as isize,
                Some(cb),
                ptr::null_mut(),
                &mut f,
            );
            sys::napi_set_named_property(env, exports, name.as_ptr(), f)
        };
        if status != sys::Status::napi_ok {
            return Err(napi::Error::new(
                napi::Status::GenericFailure,
                "registering the native callbacks failed",
            ));
        }
    }
    Ok(())
}

/// The first `N` arguments (missing ones read `undefined`).
unsafe fn args<const N: usize>(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> [sys::napi_value; N] {
    let mut argv = [ptr::null_mut(); N];
    let mut argc = N;
    // SAFETY: `argv` has room for `argc` values; env/info are the current callback's.
    unsafe {
        sys::napi_get_cb_info(
            env,
            info,
            &mut argc,
            argv.as_mut_ptr(),
            ptr::null_mut(),
            ptr::null_mut(),
        )
    };
    argv
}

fn number(env: sys::napi_env, v: sys::napi_value) -> f64 {
    let mut n = f64::NAN;
    // SAFETY: env/v come from the current callback; a non-number leaves NaN.
    unsafe { sys::napi_get_value_double(env, v, &mut n) };
    n
}

/// A non-negative integer index, or `None`.
fn index(env: sys::napi_env, v: sys::napi_value) -> Option<usize> {
    let n = number(env, v);
    (n >= 0.0 && n <= usize::MAX as f64 && n.fract() == 0.0).then_some(n as usize)
}

fn int32(env: sys::napi_env, v: sys::napi_value) -> Option<i32> {
    let n = number(env, v);
    (n >= i32::MIN as f64 && n <= i32::MAX as f64 && n.fract() == 0.0).then_some(n as i32)
}

fn throw(env: sys::napi_env, e: JsErr) -> sys::napi_value {
    let _ = e.throw(env);
    ptr::null_mut()
}

fn bad_call(env: sys::napi_env, method: &str) -> sys::napi_value {
    throw(
        env,
        JsErr::new(
            Kind::Type,
            "ERR_INVALID_ARG_TYPE",
            format!("{method}(): internal call with an invalid handle or argument; use the SharedMemory class"),
        ),
    )
}

fn undefined(env: sys::napi_env) -> sys::napi_value {
    let mut v = ptr::null_mut();
    // SAFETY: env is live.
    unsafe { sys::napi_get_undefined(env, &mut v) };
    v
}

fn int(env: sys::napi_env, n: i32) -> sys::napi_value {
    let mut v = ptr::null_mut();
    // SAFETY: env is live.
    unsafe { sys::napi_create_int32(env, n, &mut v) };
    v
}

fn string(env: sys::napi_env, s: &'static str) -> sys::napi_value {
    // SAFETY: env is live.
    unsafe { errors::js_string(env, s) }
}

/// Runs a region operation for `method`, turning its error into a JS error.
fn region_op<T>(
    env: sys::napi_env,
    inst: &Instance,
    method: &str,
    r: Result<T, RegionError>,
    ok: impl FnOnce(T) -> sys::napi_value,
) -> sys::napi_value {
    match r {
        Ok(v) => ok(v),
        Err(e) => throw(env, from_region(e, method, &inst.name)),
    }
}

/// The bytes of the instance's caged `buffer` (same length as the mapping), or an error.
fn caged_bytes<'a>(
    env: sys::napi_env,
    inst: &Instance,
    method: &str,
) -> Result<&'a mut [u8], JsErr> {
    let mut data = ptr::null_mut();
    let mut len = 0usize;
    if let Some(ab) = inst.made.buffer(env).filter(|_| inst.caged) {
        // SAFETY: env is the current callback's; `ab` is the ArrayBuffer made for this instance
        // (napi_create_arraybuffer); a detached one gives (null, 0).
        unsafe { sys::napi_get_arraybuffer_info(env, ab, &mut data, &mut len) };
    }
    if data.is_null() || len != inst.region.len() {
        return Err(JsErr::new(
            Kind::Error,
            "ERR_SHM_DETACHED",
            format!("Cannot call {method}(): buffer was detached (transferred elsewhere); nothing to copy with"),
        ));
    }
    // SAFETY: V8 owns `len` bytes at `data` for this buffer, which the local handle keeps alive
    // for this call; we are on the JS thread, so no JS code touches them during the copy.
    Ok(unsafe { std::slice::from_raw_parts_mut(data.cast::<u8>(), len) })
}

/// `pageOffset(view)`: the address of a typed array's first byte modulo 4096, or -1 for anything
/// else (a detached view included; a view out of bounds of a shrunk resizable buffer gives where
/// its first byte would be). The channel picks how it copies a large payload by it
/// (`src/channel-words.ts`, `CopyPlan`): glibc's `rep movsb` copy runs ~15× slower on AMD Zen
/// when the destination is 1–31 bytes past the source modulo 4096.
unsafe extern "C" fn page_offset(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    // SAFETY: called by Node-API with a live env and callback info.
    let [v] = unsafe { args::<1>(env, info) };
    let mut is_typed = false;
    // SAFETY: env/v are the current callback's; `is_typed` is a valid out pointer.
    unsafe { sys::napi_is_typedarray(env, v, &mut is_typed) };
    if !is_typed {
        return int(env, -1);
    }
    let mut data = ptr::null_mut();
    // SAFETY: `v` is a typed array (checked above); Node-API accepts null for the outputs we do
    // not want. Only the pointer value is used: no byte behind it is read or written.
    let status = unsafe {
        sys::napi_get_typedarray_info(
            env,
            v,
            ptr::null_mut(),
            ptr::null_mut(),
            &mut data,
            ptr::null_mut(),
            ptr::null_mut(),
        )
    };
    if status != sys::Status::napi_ok || data.is_null() {
        return int(env, -1);
    }
    int(env, (data as usize & 4095) as i32)
}

/// `copyFrom(handle, srcOffset, dstOffset, length)`: segment → the instance's caged buffer.
unsafe extern "C" fn copy_from(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    // SAFETY: called by Node-API with a live env and callback info.
    unsafe { caged_copy(env, info, false) }
}

/// `copyTo(handle, srcOffset, dstOffset, length)`: the instance's caged buffer → segment.
unsafe extern "C" fn copy_to(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    // SAFETY: called by Node-API with a live env and callback info.
    unsafe { caged_copy(env, info, true) }
}

/// Both caged copies: `length` bytes from `srcOffset` of the source to `dstOffset` of the
/// destination; `to_segment` says which of the caged buffer and the segment is the source.
///
/// # Safety
/// A Node-API callback's `env` and `info`.
unsafe fn caged_copy(
    env: sys::napi_env,
    info: sys::napi_callback_info,
    to_segment: bool,
) -> sys::napi_value {
    let method = if to_segment { "copyTo" } else { "copyFrom" };
    // SAFETY: the caller's contract.
    let [h, s, d, n] = unsafe { args::<4>(env, info) };
    let (Some(inst), Some(s), Some(d), Some(n)) = (
        instance::unwrap(env, h),
        index(env, s),
        index(env, d),
        index(env, n),
    ) else {
        return bad_call(env, method);
    };
    if to_segment && inst.access == Access::ReadOnly {
        return throw(env, from_region(RegionError::ReadOnly, method, &inst.name));
    }
    let bytes = match caged_bytes(env, inst, method) {
        Ok(b) => b,
        Err(e) => return throw(env, e),
    };
    let at = if to_segment { s } else { d };
    let Some(range) = at.checked_add(n).and_then(|end| bytes.get_mut(at..end)) else {
        return throw(
            env,
            from_region(RegionError::OutOfRange, method, &inst.name),
        );
    };
    let copied = if to_segment {
        inst.region.write(d, range)
    } else {
        inst.region.read(s, range)
    };
    region_op(env, inst, method, copied, |()| undefined(env))
}

/// `load(handle, byteOffset)`.
unsafe extern "C" fn load(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    // SAFETY: called by Node-API with a live env and callback info.
    let [h, off] = unsafe { args::<2>(env, info) };
    let (Some(inst), Some(off)) = (instance::unwrap(env, h), index(env, off)) else {
        return bad_call(env, "atomicLoad");
    };
    region_op(env, inst, "atomicLoad", inst.region.load(off), |v| {
        int(env, v)
    })
}

/// `store(handle, byteOffset, value)`.
unsafe extern "C" fn store(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    // SAFETY: called by Node-API with a live env and callback info.
    unsafe { int32_update(env, info, "atomicStore", Region::store) }
}

/// `add(handle, byteOffset, delta)`.
unsafe extern "C" fn add(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    // SAFETY: called by Node-API with a live env and callback info.
    unsafe { int32_update(env, info, "atomicAdd", Region::add) }
}

/// The frame of `store` and `add`: `(handle, byteOffset, int32)` → `op` → an Int32 result.
///
/// # Safety
/// A Node-API callback's `env` and `info`.
unsafe fn int32_update(
    env: sys::napi_env,
    info: sys::napi_callback_info,
    method: &str,
    op: fn(&Region, usize, i32) -> Result<i32, RegionError>,
) -> sys::napi_value {
    // SAFETY: the caller's contract.
    let [h, off, v] = unsafe { args::<3>(env, info) };
    let (Some(inst), Some(off), Some(v)) =
        (instance::unwrap(env, h), index(env, off), int32(env, v))
    else {
        return bad_call(env, method);
    };
    region_op(env, inst, method, op(&inst.region, off, v), |v| int(env, v))
}

/// `compareExchange(handle, byteOffset, expected, replacement)`.
unsafe extern "C" fn compare_exchange(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    // SAFETY: called by Node-API with a live env and callback info.
    let [h, off, e, r] = unsafe { args::<4>(env, info) };
    let (Some(inst), Some(off), Some(e), Some(r)) = (
        instance::unwrap(env, h),
        index(env, off),
        int32(env, e),
        int32(env, r),
    ) else {
        return bad_call(env, "atomicCompareExchange");
    };
    region_op(
        env,
        inst,
        "atomicCompareExchange",
        inst.region.compare_exchange(off, e, r),
        |v| int(env, v),
    )
}

/// A timeout in ms from JS (already checked there): `undefined`/`Infinity` → forever.
fn timeout(env: sys::napi_env, v: sys::napi_value) -> Option<Option<Duration>> {
    let ms = number(env, v);
    if ms.is_nan() {
        // `undefined` reads NaN here; the class passes only numbers or undefined.
        return Some(None);
    }
    if ms < 0.0 {
        return None;
    }
    Some(if ms.is_infinite() {
        None
    } else {
        Duration::try_from_secs_f64(ms / 1000.0).ok()
    })
}

fn truthy(env: sys::napi_env, v: sys::napi_value) -> bool {
    let mut b = false;
    // SAFETY: env/v come from the current callback; a non-boolean leaves `false`.
    unsafe { sys::napi_get_value_bool(env, v, &mut b) };
    b
}

unsafe extern "C" fn noop(_env: sys::napi_env, _info: sys::napi_callback_info) -> sys::napi_value {
    ptr::null_mut()
}

/// `wait(handle, byteOffset, expected, timeoutMs, inWorker)`: blocks this thread.
///
/// In a worker it is interruptible the way `Atomics.wait` is: the kernel sleep is cut into
/// `shm_core::WAIT_SLICE`s, and between two it calls an empty JS function, which fails once the
/// worker's environment is stopping (`worker.terminate()`, `process.exit()` stopping workers);
/// the wait then ends and the termination proceeds. The main thread needs no slices (nothing
/// else can stop it while it blocks) and keeps the exact futex semantics.
unsafe extern "C" fn wait(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    // SAFETY: called by Node-API with a live env and callback info.
    let [h, off, e, t, worker] = unsafe { args::<5>(env, info) };
    let (Some(inst), Some(off), Some(e), Some(t)) = (
        instance::unwrap(env, h),
        index(env, off),
        int32(env, e),
        timeout(env, t),
    ) else {
        return bad_call(env, "wait");
    };
    let slice = truthy(env, worker).then_some(shm_core::WAIT_SLICE);
    let mut probe_fn: sys::napi_value = ptr::null_mut();
    let mut stopping = || {
        // SAFETY: on the JS thread of `env`, inside this callback's handle scope.
        unsafe {
            if probe_fn.is_null()
                && sys::napi_create_function(
                    env,
                    c"".as_ptr(),
                    0,
                    Some(noop),
                    ptr::null_mut(),
                    &mut probe_fn,
                ) != sys::Status::napi_ok
            {
                return true;
            }
            let mut global = ptr::null_mut();
            let mut result = ptr::null_mut();
            sys::napi_get_global(env, &mut global);
            sys::napi_call_function(env, global, probe_fn, 0, ptr::null(), &mut result)
                != sys::Status::napi_ok
        }
    };
    match inst
        .region
        .wait_interruptible(off, e, t, slice, &mut stopping)
    {
        Ok(outcome) => string(env, outcome.as_str()),
        Err(RegionError::Interrupted) => {
            // The environment is stopping: leave whatever exception is pending (termination).
            if crate::take_pending_exception(env).is_none() {
                let _ = from_region(RegionError::Interrupted, "wait", &inst.name).throw(env);
            }
            ptr::null_mut()
        }
        Err(err) => throw(env, from_region(err, "wait", &inst.name)),
    }
}

/// `waitAsync(handle, byteOffset, expected, timeoutMs)` → Promise.
unsafe extern "C" fn wait_async_cb(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    // SAFETY: called by Node-API with a live env and callback info.
    let [h, off, e, t] = unsafe { args::<4>(env, info) };
    let (Some(inst), Some(off), Some(e), Some(t)) = (
        instance::unwrap(env, h),
        index(env, off),
        int32(env, e),
        timeout(env, t),
    ) else {
        return bad_call(env, "waitAsync");
    };
    if let Err(err) = inst.region.check_i32(off) {
        return throw(env, from_region(err, "waitAsync", &inst.name));
    }
    if inst.region.is_closed() {
        return throw(env, errors::closed("waitAsync"));
    }
    wait_async::start(env, inst, off, e, t).unwrap_or(ptr::null_mut())
}

/// `notify(handle, byteOffset, count)`: `count` ≥ 2³² or `Infinity` means all.
unsafe extern "C" fn notify(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    // SAFETY: called by Node-API with a live env and callback info.
    let [h, off, c] = unsafe { args::<3>(env, info) };
    let count = number(env, c);
    let (Some(inst), Some(off), true) = (instance::unwrap(env, h), index(env, off), count >= 0.0)
    else {
        return bad_call(env, "notify");
    };
    let count = if count >= u32::MAX as f64 {
        u32::MAX
    } else {
        count as u32
    };
    region_op(env, inst, "notify", inst.region.notify(off, count), |n| {
        let mut v = ptr::null_mut();
        // SAFETY: env is live.
        unsafe { sys::napi_create_uint32(env, n, &mut v) };
        v
    })
}

fn null(env: sys::napi_env) -> sys::napi_value {
    let mut v = ptr::null_mut();
    // SAFETY: env is live.
    unsafe { sys::napi_get_null(env, &mut v) };
    v
}

/// `atomicsView(handle)`: an `Int32Array` over the shared mapping of a read-write zero-copy
/// instance, for the class's JS atomics (it keeps it in a private field); `null` when caged,
/// closed, read-only (the shared mapping is `PROT_READ` there: a write through a view would kill
/// the process, so READ atomics run natively), or longer than the runtime's typed arrays (then
/// the atomics run natively too). Its ArrayBuffer is remembered and detached by `close()`, like
/// every buffer made here, whoever ends up holding it.
unsafe extern "C" fn atomics_view(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    // SAFETY: called by Node-API with a live env and callback info.
    let [h] = unsafe { args::<1>(env, info) };
    let Some(inst) = instance::unwrap(env, h) else {
        return bad_call(env, "atomicsView");
    };
    // Elements: V8 before 12 aborts (an API check, not an exception) above 2^32 per typed array.
    let elements = inst.region.len() / 4;
    if inst.caged
        || inst.access == Access::ReadOnly
        || inst.region.is_closed()
        || elements == 0
        || elements as u64 >= 1 << 32
    {
        return null(env);
    }
    let ab = match instance::external_buffer(
        env,
        &inst.region,
        inst.region.as_ptr().as_ptr(),
        // The view is reachable by a direct caller of this callback (or code that patched
        // `Atomics` before the package loaded), who may transfer it: it gets its own witness,
        // as `buffer` does (instance.rs), so a worker's teardown unmaps only if it is still
        // attached there, never "safe to unmap" by assumption.
        Some(std::sync::Arc::new(std::sync::atomic::AtomicI32::new(0))),
        &inst.name,
    ) {
        Ok(Some(ab)) => ab,
        Ok(None) => return null(env),
        Err(e) => return throw(env, e),
    };
    let mut view = ptr::null_mut();
    // SAFETY: env is live; `ab` was just made with `region.len()` ≥ 4 * elements bytes.
    let status = unsafe {
        sys::napi_create_typedarray(
            env,
            sys::TypedarrayType::int32_array,
            elements,
            ab,
            0,
            &mut view,
        )
    };
    if status != sys::Status::napi_ok {
        // The runtime cannot make a typed array that long: atomics run natively. `ab` never
        // reached JavaScript; detached, it can reach nothing.
        let _ = crate::take_pending_exception(env);
        instance::detach(env, ab);
        return null(env);
    }
    inst.made.remember(env, ab);
    instance::hold_view(env, inst, ab);
    view
}

/// `sharedBuffer(handle)`: a SharedArrayBuffer or `null`.
unsafe extern "C" fn shared_buffer(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    // SAFETY: called by Node-API with a live env and callback info.
    let [h] = unsafe { args::<1>(env, info) };
    let Some(inst) = instance::unwrap(env, h) else {
        return bad_call(env, "sharedBuffer");
    };
    crate::shared_buffer(env, inst).unwrap_or_else(|| null(env))
}

/// `close(handle)`: detaches every buffer made for the instance (never one JavaScript passes:
/// extra arguments are ignored), wakes waiters, releases the OS handle and — unless one of
/// those buffers was already detached by someone else (transferred: it may live on elsewhere)
/// or collected before, or a SharedArrayBuffer exists — unmaps now. A second call does nothing.
unsafe extern "C" fn close(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    // SAFETY: called by Node-API with a live env and callback info.
    let [h] = unsafe { args::<1>(env, info) };
    let Some(inst) = instance::unwrap(env, h) else {
        return bad_call(env, "close");
    };
    if inst.closed.replace(true) {
        return undefined(env);
    }
    let released = inst.made.detach_all(env);
    // A caged instance's buffers are V8-owned copies: nothing of the mapping is behind them.
    inst.region
        .close((inst.caged || released) && !inst.shared_made.get());
    undefined(env)
}
