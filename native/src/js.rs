//! Small safe-ish helpers over the raw Node-API: argument decoding, buffers, thrown errors.

use crate::error::{arg, NativeError, Result};
use crate::napi::*;
use std::ffi::CString;
use std::os::raw::c_void;
use std::ptr;

macro_rules! check {
    ($call:expr, $what:literal) => {{
        let st = $call;
        if st != NAPI_OK {
            return Err($crate::error::NativeError::Internal(format!(concat!($what, " failed (napi status {})"), st)));
        }
    }};
}
pub(crate) use check;

pub unsafe fn args<const N: usize>(env: napi_env, info: napi_callback_info) -> Result<[napi_value; N]> {
    let mut argc = N;
    let mut argv = [ptr::null_mut(); N];
    check!(napi_get_cb_info(env, info, &mut argc, argv.as_mut_ptr(), ptr::null_mut(), ptr::null_mut()), "napi_get_cb_info");
    // missing trailing arguments come back as null pointers; make them `undefined`
    for v in argv.iter_mut().skip(argc) {
        check!(napi_get_undefined(env, v), "napi_get_undefined");
    }
    Ok(argv)
}

pub unsafe fn type_of(env: napi_env, v: napi_value) -> Result<i32> {
    let mut t = 0;
    check!(napi_typeof(env, v, &mut t), "napi_typeof");
    Ok(t)
}

pub unsafe fn is_nullish(env: napi_env, v: napi_value) -> Result<bool> {
    Ok(matches!(type_of(env, v)?, NAPI_UNDEFINED | NAPI_NULL))
}

/// A Buffer or other ArrayBufferView argument as a byte slice (valid while the value is alive).
pub unsafe fn bytes<'a>(env: napi_env, v: napi_value, name: &str) -> Result<&'a mut [u8]> {
    let mut ok = false;
    check!(napi_is_buffer(env, v, &mut ok), "napi_is_buffer");
    if !ok {
        return arg(format!("{name} must be a Buffer or Uint8Array"));
    }
    let mut data: *mut c_void = ptr::null_mut();
    let mut len = 0usize;
    check!(napi_get_buffer_info(env, v, &mut data, &mut len), "napi_get_buffer_info");
    Ok(if len == 0 { &mut [] } else { std::slice::from_raw_parts_mut(data.cast(), len) })
}

pub unsafe fn string(env: napi_env, v: napi_value, name: &str) -> Result<String> {
    if type_of(env, v)? != NAPI_STRING {
        return arg(format!("{name} must be a string"));
    }
    // first the length (a null buffer asks for it), then the bytes and room for the NUL
    let mut len = 0usize;
    check!(napi_get_value_string_utf8(env, v, std::ptr::null_mut(), 0, &mut len), "napi_get_value_string_utf8");
    let mut buf = vec![0u8; len + 1];
    check!(napi_get_value_string_utf8(env, v, buf.as_mut_ptr().cast(), buf.len(), &mut len), "napi_get_value_string_utf8");
    buf.truncate(len);
    String::from_utf8(buf).map_err(|_| NativeError::Argument(format!("{name} is not valid UTF-8")))
}

pub unsafe fn number(env: napi_env, v: napi_value, name: &str) -> Result<f64> {
    if type_of(env, v)? != NAPI_NUMBER {
        return arg(format!("{name} must be a number"));
    }
    let mut d = 0f64;
    check!(napi_get_value_double(env, v, &mut d), "napi_get_value_double");
    Ok(d)
}

/// A non-negative integer below 2^53 that fits in usize.
pub unsafe fn size(env: napi_env, v: napi_value, name: &str) -> Result<usize> {
    let d = number(env, v, name)?;
    if !(d >= 0.0 && d.fract() == 0.0 && d <= 9007199254740991.0) {
        return arg(format!("{name} must be a non-negative integer, got {d}"));
    }
    Ok(d as usize)
}

pub unsafe fn opt_size(env: napi_env, v: napi_value, name: &str) -> Result<Option<usize>> {
    if is_nullish(env, v)? { Ok(None) } else { size(env, v, name).map(Some) }
}

pub unsafe fn int(env: napi_env, v: napi_value, name: &str) -> Result<i32> {
    let d = number(env, v, name)?;
    if d.fract() != 0.0 || d < i32::MIN as f64 || d > i32::MAX as f64 {
        return arg(format!("{name} must be an integer, got {d}"));
    }
    Ok(d as i32)
}

pub unsafe fn array(env: napi_env, v: napi_value, name: &str) -> Result<Vec<napi_value>> {
    let mut ok = false;
    check!(napi_is_array(env, v, &mut ok), "napi_is_array");
    if !ok {
        return arg(format!("{name} must be an array"));
    }
    let mut n = 0u32;
    check!(napi_get_array_length(env, v, &mut n), "napi_get_array_length");
    let mut out = Vec::with_capacity(n as usize);
    for i in 0..n {
        let mut e = ptr::null_mut();
        check!(napi_get_element(env, v, i, &mut e), "napi_get_element");
        out.push(e);
    }
    Ok(out)
}

pub unsafe fn new_array(env: napi_env, items: &[napi_value]) -> Result<napi_value> {
    let mut arr = ptr::null_mut();
    check!(napi_create_array_with_length(env, items.len(), &mut arr), "napi_create_array_with_length");
    for (i, v) in items.iter().enumerate() {
        check!(napi_set_element(env, arr, i as u32, *v), "napi_set_element");
    }
    Ok(arr)
}

pub unsafe fn new_string(env: napi_env, s: &str) -> Result<napi_value> {
    let mut v = ptr::null_mut();
    check!(napi_create_string_utf8(env, s.as_ptr().cast(), s.len(), &mut v), "napi_create_string_utf8");
    Ok(v)
}

pub unsafe fn new_number(env: napi_env, n: f64) -> Result<napi_value> {
    let mut v = ptr::null_mut();
    check!(napi_create_double(env, n, &mut v), "napi_create_double");
    Ok(v)
}

pub unsafe fn undefined(env: napi_env) -> Result<napi_value> {
    let mut v = ptr::null_mut();
    check!(napi_get_undefined(env, &mut v), "napi_get_undefined");
    Ok(v)
}

/// A new Buffer of `len` bytes (not zeroed) in memory V8 owns, and its contents to fill.
pub unsafe fn new_buffer<'a>(env: napi_env, len: usize) -> Result<(napi_value, &'a mut [u8])> {
    let mut p: *mut c_void = ptr::null_mut();
    let mut v = ptr::null_mut();
    check!(napi_create_buffer(env, len, &mut p, &mut v), "napi_create_buffer");
    Ok((v, if len == 0 { &mut [] } else { std::slice::from_raw_parts_mut(p.cast(), len) }))
}

/// A Buffer holding a copy of `data`.
pub unsafe fn new_buffer_copy(env: napi_env, data: &[u8]) -> Result<napi_value> {
    let (v, dst) = new_buffer(env, data.len())?;
    dst.copy_from_slice(data);
    Ok(v)
}

unsafe extern "C" fn free_vec(env: napi_env, _data: *mut c_void, hint: *mut c_void) {
    let data = Box::from_raw(hint as *mut Vec<u8>);
    let mut total = 0i64;
    napi_adjust_external_memory(env, -(data.capacity() as i64), &mut total);
}

/// Below this size a result is copied into a V8-owned Buffer rather than handed over.
const COPY_BELOW: usize = 64 << 10;

/// A Buffer that takes ownership of `data` without copying it. Small results (digests) are copied
/// instead: an external buffer's finalizer runs from the thread's event loop, and a FUSE worker
/// thread that never returns to its loop would keep every one of them.
pub unsafe fn new_buffer_owned(env: napi_env, data: Vec<u8>) -> Result<napi_value> {
    if data.len() < COPY_BELOW {
        return new_buffer_copy(env, &data);
    }
    let mut boxed = Box::new(data);
    let (p, len) = (boxed.as_mut_ptr(), boxed.len());
    let hint = Box::into_raw(boxed);
    let mut v = ptr::null_mut();
    let st = napi_create_external_buffer(env, len, p.cast(), Some(free_vec), hint.cast(), &mut v);
    if st != NAPI_OK {
        let data = Box::from_raw(hint);
        return new_buffer_copy(env, &data);
    }
    // tell V8 about memory it cannot see, or it collects too rarely and the process grows
    let mut total = 0i64;
    napi_adjust_external_memory(env, (*hint).capacity() as i64, &mut total);
    Ok(v)
}

pub unsafe fn error_value(env: napi_env, e: &NativeError) -> napi_value {
    let code = new_string(env, e.code()).unwrap_or(ptr::null_mut());
    let msg = new_string(env, e.message()).unwrap_or(ptr::null_mut());
    let mut err = ptr::null_mut();
    napi_create_error(env, code, msg, &mut err);
    err
}

/// Runs a callback body, turning errors and Rust panics into a thrown JS Error.
pub unsafe fn guard(env: napi_env, f: impl FnOnce() -> Result<napi_value>) -> napi_value {
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .unwrap_or_else(|_| Err(NativeError::Internal("panic in native code".into())));
    match r {
        Ok(v) => v,
        Err(e) => {
            let mut pending = false;
            napi_is_exception_pending(env, &mut pending);
            if !pending {
                napi_throw(env, error_value(env, &e));
            }
            ptr::null_mut()
        }
    }
}

pub unsafe fn export(env: napi_env, exports: napi_value, name: &str, f: napi_callback) -> Result<()> {
    let cname = CString::new(name).expect("export names have no NUL");
    let mut fv = ptr::null_mut();
    check!(napi_create_function(env, cname.as_ptr(), name.len(), f, ptr::null_mut(), &mut fv), "napi_create_function");
    check!(napi_set_named_property(env, exports, cname.as_ptr(), fv), "napi_set_named_property");
    Ok(())
}

/// A Rust value JS holds as an opaque handle. The tag lets a handle of the wrong kind be refused
/// instead of being reinterpreted as another type.
pub trait ExternalKind: Sized + 'static {
    const TAG: u32;
    const NAME: &'static str;
}

#[repr(C)]
struct Tagged<T> {
    tag: u32,
    value: T,
}

unsafe extern "C" fn free_tagged<T: ExternalKind>(_env: napi_env, data: *mut c_void, _hint: *mut c_void) {
    drop(Box::from_raw(data as *mut Tagged<T>));
}

pub unsafe fn new_external<T: ExternalKind>(env: napi_env, value: T) -> Result<napi_value> {
    let raw = Box::into_raw(Box::new(Tagged { tag: T::TAG, value }));
    let mut v = ptr::null_mut();
    if napi_create_external(env, raw.cast(), Some(free_tagged::<T>), ptr::null_mut(), &mut v) != NAPI_OK {
        drop(Box::from_raw(raw));
        return Err(NativeError::Internal("napi_create_external failed".into()));
    }
    Ok(v)
}

pub unsafe fn external_arg<'a, T: ExternalKind>(env: napi_env, v: napi_value) -> Result<&'a mut T> {
    let mut p: *mut c_void = ptr::null_mut();
    if type_of(env, v)? == NAPI_EXTERNAL {
        check!(napi_get_value_external(env, v, &mut p), "napi_get_value_external");
    }
    // every handle this addon makes starts with its tag (repr(C)), whatever its type
    if p.is_null() || *(p as *const u32) != T::TAG {
        return arg(format!("{} handle expected", T::NAME));
    }
    Ok(&mut (*(p as *mut Tagged<T>)).value)
}
