//! The `ArrayBuffer`s the native side made for one instance, and only those: `close()` detaches
//! them itself and never touches a buffer JavaScript hands it.
//!
//! Each buffer made for an instance (its `buffer`, zero-copy or the caged copy, and every hidden
//! atomics view) is remembered through a weak Node-API reference (it does not keep the buffer
//! alive). At `close()` every one still alive and attached is detached here, so no JavaScript
//! object can reach the mapping afterwards. The mapping is unmapped at once only if that
//! accounts for all of them; one that was detached by someone else (transferred: its memory may
//! live on in another thread) or collected before `close()` (possibly after a transfer) keeps
//! it mapped until the last buffer over it is finalized (`instance.rs`, `BufferGuard`). The
//! class holds its buffers until `close()`, so for it the second case does not arise.

use std::cell::{Cell, RefCell};
use std::ptr;

use napi::sys;

/// Remembered buffers of one instance; lives in its `Instance` (one JS thread).
#[derive(Default)]
pub struct Made {
    /// Weak references; the first is the instance's `buffer`.
    refs: RefCell<Vec<sys::napi_ref>>,
    /// A made buffer can no longer be accounted for (its reference failed, or it was collected
    /// and its reference pruned): `close()` must keep the mapping.
    lost: Cell<bool>,
}

/// Beyond this many references, dead ones are pruned before another is added (a direct caller
/// asking for atomics views in a loop must not grow the list without bound).
const PRUNE_AT: usize = 16;

fn value(env: sys::napi_env, r: sys::napi_ref) -> Option<sys::napi_value> {
    let mut v = ptr::null_mut();
    // SAFETY: `r` is a live reference of this env (deleted only in `release`); a collected
    // target gives null.
    let status = unsafe { sys::napi_get_reference_value(env, r, &mut v) };
    (status == sys::Status::napi_ok && !v.is_null()).then_some(v)
}

fn delete(env: sys::napi_env, r: sys::napi_ref) {
    // SAFETY: `r` was created by `remember` in this env and is deleted exactly once.
    unsafe { sys::napi_delete_reference(env, r) };
}

impl Made {
    /// Remembers `ab`, an `ArrayBuffer` native code just made for this instance.
    pub fn remember(&self, env: sys::napi_env, ab: sys::napi_value) {
        let mut refs = self.refs.borrow_mut();
        if refs.len() >= PRUNE_AT {
            let mut i = 1; // never the instance's `buffer`
            while i < refs.len() {
                if value(env, refs[i]).is_none() {
                    delete(env, refs.swap_remove(i));
                    self.lost.set(true);
                } else {
                    i += 1;
                }
            }
        }
        let mut r = ptr::null_mut();
        // SAFETY: env/ab are the current callback's; a weak (count 0) reference.
        if unsafe { sys::napi_create_reference(env, ab, 0, &mut r) } == sys::Status::napi_ok {
            refs.push(r);
        } else {
            self.lost.set(true);
        }
    }

    /// The instance's `buffer` if it is still alive (attached or not).
    pub fn buffer(&self, env: sys::napi_env) -> Option<sys::napi_value> {
        let first = *self.refs.borrow().first()?;
        value(env, first)
    }

    /// Detaches every remembered buffer still alive and attached. `true` when each one is now
    /// detached by this call or was never handed out beyond this instance's own use — i.e. no
    /// JavaScript anywhere can still reach memory behind them; `false` when one was detached by
    /// someone else (transferred) or collected unseen, or refused to detach.
    pub fn detach_all(&self, env: sys::napi_env) -> bool {
        let mut all = !self.lost.get();
        for &r in self.refs.borrow().iter() {
            match value(env, r) {
                Some(ab) if !crate::instance::is_detached(env, ab) => {
                    // SAFETY: `ab` is an ArrayBuffer this module made (so detachable: external, or
                    // V8-owned by napi_create_arraybuffer); env is the current callback's.
                    let ok =
                        unsafe { sys::napi_detach_arraybuffer(env, ab) } == sys::Status::napi_ok;
                    all &= ok;
                }
                _ => all = false,
            }
        }
        all
    }

    /// Deletes every reference (the instance is being finalized).
    pub fn release(&self, env: sys::napi_env) {
        for r in self.refs.borrow_mut().drain(..) {
            delete(env, r);
        }
    }
}
