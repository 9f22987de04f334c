//! libzstd's C interface, declared once for the modules that call it (codec, the layer stream,
//! the member decoder). libzstd is linked dynamically: every Debian system has it.

use std::os::raw::{c_char, c_int, c_uint, c_ulonglong, c_void};

#[repr(C)]
pub struct ZstdInBuffer { pub src: *const c_void, pub size: usize, pub pos: usize }
#[repr(C)]
pub struct ZstdOutBuffer { pub dst: *mut c_void, pub size: usize, pub pos: usize }

#[link(name = "zstd")]
extern "C" {
    pub fn ZSTD_createCCtx() -> *mut c_void;
    pub fn ZSTD_createDCtx() -> *mut c_void;
    pub fn ZSTD_freeDCtx(dctx: *mut c_void) -> usize;
    pub fn ZSTD_compressCCtx(cctx: *mut c_void, dst: *mut c_void, cap: usize, src: *const c_void, len: usize, level: c_int) -> usize;
    pub fn ZSTD_decompressDCtx(dctx: *mut c_void, dst: *mut c_void, cap: usize, src: *const c_void, len: usize) -> usize;
    pub fn ZSTD_decompressStream(dctx: *mut c_void, out: *mut ZstdOutBuffer, inp: *mut ZstdInBuffer) -> usize;
    pub fn ZSTD_DCtx_reset(dctx: *mut c_void, directive: c_int) -> usize;
    pub fn ZSTD_DCtx_setParameter(dctx: *mut c_void, param: c_int, value: c_int) -> usize;
    pub fn ZSTD_compressBound(len: usize) -> usize;
    pub fn ZSTD_getFrameContentSize(src: *const c_void, len: usize) -> c_ulonglong;
    pub fn ZSTD_isError(code: usize) -> c_uint;
    pub fn ZSTD_getErrorName(code: usize) -> *const c_char;
    pub fn ZSTD_getErrorCode(code: usize) -> c_int;
    pub fn ZSTD_minCLevel() -> c_int;
    pub fn ZSTD_maxCLevel() -> c_int;
}

/// ZSTD_d_windowLogMax: frames needing more than 2^ZSTD_WINDOW_LOG_LIMIT (128 MiB) of window are refused.
pub const ZSTD_D_WINDOW_LOG_MAX: c_int = 100;
pub const ZSTD_WINDOW_LOG_LIMIT: c_int = 27;
