//! Argument checks, without coercion, in the style of Node's `validateInteger` & co.
//! `undefined` means "use the default" wherever an argument is optional; nothing else does.

use std::ptr;

use napi::{sys, ValueType};

use crate::errors::{invalid_type, out_of_range, JsErr};

/// Largest integer a JS number holds exactly.
pub const MAX_SAFE: f64 = 9_007_199_254_740_991.0;

fn type_of(env: sys::napi_env, v: sys::napi_value) -> ValueType {
    let mut t = 0;
    // SAFETY: env/value come from the current callback.
    unsafe { sys::napi_typeof(env, v, &mut t) };
    ValueType::from(t)
}

fn number(env: sys::napi_env, v: sys::napi_value) -> f64 {
    let mut n = 0.0;
    // SAFETY: only called on values whose type is number.
    unsafe { sys::napi_get_value_double(env, v, &mut n) };
    n
}

fn fmt_num(n: f64) -> String {
    if n.is_nan() {
        "NaN".into()
    } else if n.is_infinite() {
        if n > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else if n == 0.0 && n.is_sign_negative() {
        "-0".into()
    } else {
        format!("{n}")
    }
}

/// How Node's messages describe a received value ("type string ('x')", "undefined", …).
pub fn describe(env: sys::napi_env, v: sys::napi_value) -> String {
    match type_of(env, v) {
        ValueType::Undefined => "undefined".into(),
        ValueType::Null => "null".into(),
        ValueType::Boolean => {
            let mut b = false;
            // SAFETY: v is a boolean.
            unsafe { sys::napi_get_value_bool(env, v, &mut b) };
            format!("type boolean ({b})")
        }
        ValueType::Number => format!("type number ({})", fmt_num(number(env, v))),
        ValueType::String => {
            let s = string(env, v);
            let shown: String = s.chars().take(28).collect();
            let more = if shown.len() < s.len() { "..." } else { "" };
            format!("type string ('{shown}'{more})")
        }
        ValueType::BigInt => "type bigint".into(),
        ValueType::Symbol => "type symbol".into(),
        ValueType::Function => "function".into(),
        _ => "an object".into(),
    }
}

fn string(env: sys::napi_env, v: sys::napi_value) -> String {
    let mut len = 0usize;
    // SAFETY: v is a string; a null buffer asks for the length in UTF-8 bytes.
    unsafe { sys::napi_get_value_string_utf8(env, v, ptr::null_mut(), 0, &mut len) };
    let mut buf = vec![0u8; len + 1];
    let mut written = 0usize;
    // SAFETY: `buf` has room for `len` bytes plus the NUL napi writes.
    unsafe {
        sys::napi_get_value_string_utf8(env, v, buf.as_mut_ptr().cast(), buf.len(), &mut written)
    };
    buf.truncate(written);
    // napi writes valid UTF-8 (lone surrogates become U+FFFD).
    String::from_utf8(buf).unwrap_or_default()
}

/// Whether `v` is `undefined` (an omitted argument reads as `undefined`).
pub fn is_undefined(env: sys::napi_env, v: sys::napi_value) -> bool {
    type_of(env, v) == ValueType::Undefined
}

/// A required string.
pub fn string_arg(env: sys::napi_env, v: sys::napi_value, what: &str) -> Result<String, JsErr> {
    if type_of(env, v) != ValueType::String {
        return Err(invalid_type(what, "of type string", &describe(env, v)));
    }
    Ok(string(env, v))
}

/// A number, or `None` for `undefined` when optional.
fn number_arg(env: sys::napi_env, v: sys::napi_value, what: &str) -> Result<Option<f64>, JsErr> {
    match type_of(env, v) {
        ValueType::Undefined => Ok(None),
        ValueType::Number => Ok(Some(number(env, v))),
        _ => Err(invalid_type(what, "of type number", &describe(env, v))),
    }
}

/// An integer in `min..=max`, or `None` for `undefined`.
pub fn int_arg(
    env: sys::napi_env,
    v: sys::napi_value,
    what: &str,
    min: f64,
    max: f64,
) -> Result<Option<f64>, JsErr> {
    let Some(n) = number_arg(env, v, what)? else {
        return Ok(None);
    };
    if n.fract() != 0.0 || !n.is_finite() || n < min || n > max {
        let rule = if n.is_finite() && n.fract() != 0.0 {
            "an integer".to_string()
        } else {
            format!("an integer >= {} and <= {}", fmt_num(min), fmt_num(max))
        };
        return Err(out_of_range(what, &rule, &fmt_num(n)));
    }
    // -0 is 0.
    Ok(Some(n + 0.0))
}

/// A boolean option, `None` for `undefined`.
pub fn bool_arg(env: sys::napi_env, v: sys::napi_value, what: &str) -> Result<Option<bool>, JsErr> {
    match type_of(env, v) {
        ValueType::Undefined => Ok(None),
        ValueType::Boolean => {
            let mut b = false;
            // SAFETY: v is a boolean.
            unsafe { sys::napi_get_value_bool(env, v, &mut b) };
            Ok(Some(b))
        }
        _ => Err(invalid_type(what, "of type boolean", &describe(env, v))),
    }
}

/// Reads property `key` of `obj` (own or inherited, getters run), or `undefined`.
pub fn property(
    env: sys::napi_env,
    obj: sys::napi_value,
    key: &std::ffi::CStr,
) -> Result<sys::napi_value, ()> {
    let mut v = ptr::null_mut();
    // SAFETY: obj is an object value of this callback; a throwing getter leaves an exception
    // pending and a non-ok status, reported as Err.
    let status = unsafe { sys::napi_get_named_property(env, obj, key.as_ptr(), &mut v) };
    if status == sys::Status::napi_ok {
        Ok(v)
    } else {
        Err(())
    }
}

/// Whether `v` is a plain object-ish value (object, not null, not a function).
pub fn is_object(env: sys::napi_env, v: sys::napi_value) -> bool {
    type_of(env, v) == ValueType::Object
}
