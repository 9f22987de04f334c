//! zlib's inflate interface, declared once for the modules that call it (the member decoder, the
//! gzip checkpoint indexer and extractor), and `Inflater`, an initialised stream that ends itself.
//! zlib is linked dynamically: every Debian system has it.

use crate::error::{NativeError, Result};
use std::ffi::CStr;
use std::os::raw::{c_char, c_int, c_uint, c_ulong, c_void};

/// zlib's z_stream (zlib.h), as laid out on LP64.
#[repr(C)]
pub struct ZStream {
    pub next_in: *const u8,
    pub avail_in: c_uint,
    pub total_in: c_ulong,
    pub next_out: *mut u8,
    pub avail_out: c_uint,
    pub total_out: c_ulong,
    pub msg: *const c_char,
    state: *mut c_void,
    zalloc: *const c_void,
    zfree: *const c_void,
    opaque: *mut c_void,
    pub data_type: c_int,
    adler: c_ulong,
    reserved: c_ulong,
}

#[link(name = "z")]
extern "C" {
    fn inflateInit2_(strm: *mut ZStream, window_bits: c_int, version: *const c_char, stream_size: c_int) -> c_int;
    pub fn inflate(strm: *mut ZStream, flush: c_int) -> c_int;
    fn inflateEnd(strm: *mut ZStream) -> c_int;
    pub fn inflateReset2(strm: *mut ZStream, window_bits: c_int) -> c_int;
    pub fn inflatePrime(strm: *mut ZStream, bits: c_int, value: c_int) -> c_int;
    pub fn inflateSetDictionary(strm: *mut ZStream, dictionary: *const u8, length: c_uint) -> c_int;
}

pub const Z_OK: c_int = 0;
pub const Z_STREAM_END: c_int = 1;
pub const Z_BUF_ERROR: c_int = -5;
pub const Z_MEM_ERROR: c_int = -4;
pub const Z_NO_FLUSH: c_int = 0;
/// Stop at each deflate block boundary (and right after a gzip header).
pub const Z_BLOCK: c_int = 5;
/// A 32 KiB window, gzip header and trailer only (no zlib or raw streams).
pub const GZIP_WINDOW_BITS: c_int = 15 + 16;
/// A 32 KiB window, raw deflate (no header, no trailer): decoding from a checkpoint.
pub const RAW_WINDOW_BITS: c_int = -15;
/// The deflate window: the most a back-reference reaches.
pub const WINDOW_SIZE: usize = 32 << 10;
/// inflateInit2_ checks only the major version and the struct size.
const ZLIB_VERSION: &[u8] = b"1.2.13\0";

/// An initialised inflate stream (boxed: zlib keeps a pointer back to it), ended on drop.
pub struct Inflater {
    pub z: Box<ZStream>,
}

impl Inflater {
    pub fn new(window_bits: c_int) -> Result<Inflater> {
        let mut z = Box::new(ZStream {
            next_in: std::ptr::null(), avail_in: 0, total_in: 0, next_out: std::ptr::null_mut(), avail_out: 0, total_out: 0,
            msg: std::ptr::null(), state: std::ptr::null_mut(), zalloc: std::ptr::null(), zfree: std::ptr::null(),
            opaque: std::ptr::null_mut(), data_type: 0, adler: 0, reserved: 0,
        });
        let size = std::mem::size_of::<ZStream>() as c_int;
        match unsafe { inflateInit2_(&mut *z, window_bits, ZLIB_VERSION.as_ptr().cast(), size) } {
            Z_OK => Ok(Inflater { z }),
            Z_MEM_ERROR => Err(NativeError::Internal("inflateInit2: out of memory".into())),
            r => Err(NativeError::Internal(format!("inflateInit2 failed ({r})"))),
        }
    }

    /// Inflates from `input` into `out` with `flush`: zlib's result and the bytes taken and made.
    pub fn run(&mut self, input: &[u8], out: &mut [u8], flush: c_int) -> (c_int, usize, usize) {
        let avail_in = input.len().min(c_uint::MAX as usize);
        let room = out.len().min(c_uint::MAX as usize);
        self.z.next_in = input.as_ptr();
        self.z.avail_in = avail_in as c_uint;
        self.z.next_out = out.as_mut_ptr();
        self.z.avail_out = room as c_uint;
        let r = unsafe { inflate(&mut *self.z, flush) };
        (r, avail_in - self.z.avail_in as usize, room - self.z.avail_out as usize)
    }

    /// zlib's message for the last error.
    pub fn message(&self) -> String {
        if self.z.msg.is_null() { "invalid data".into() } else { unsafe { CStr::from_ptr(self.z.msg) }.to_string_lossy().into_owned() }
    }
}

impl Drop for Inflater {
    fn drop(&mut self) {
        unsafe { inflateEnd(&mut *self.z) };
    }
}
