//! Streaming zstd decoding for layer tars (`.tar.zst`), where input arrives in network-sized
//! pieces and the whole stream never fits in memory. Each stream owns its context.

use crate::error::{NativeError, Result};
use std::os::raw::{c_char, c_int, c_uint, c_void};
use std::ffi::CStr;

#[repr(C)]
struct InBuffer { src: *const c_void, size: usize, pos: usize }
#[repr(C)]
struct OutBuffer { dst: *mut c_void, size: usize, pos: usize }

#[link(name = "zstd")]
extern "C" {
    fn ZSTD_createDCtx() -> *mut c_void;
    fn ZSTD_freeDCtx(dctx: *mut c_void) -> usize;
    fn ZSTD_decompressStream(dctx: *mut c_void, out: *mut OutBuffer, inp: *mut InBuffer) -> usize;
    fn ZSTD_isError(code: usize) -> c_uint;
    fn ZSTD_getErrorName(code: usize) -> *const c_char;
    fn ZSTD_DCtx_setParameter(dctx: *mut c_void, param: c_int, value: c_int) -> usize;
}

/// ZSTD_d_windowLogMax: refuse frames that would need more than 2^27 (128 MiB) of window.
const ZSTD_D_WINDOW_LOG_MAX: c_int = 100;
const WINDOW_LOG_LIMIT: c_int = 27;
const OUT_STEP: usize = 1 << 20;

pub struct ZstdStream {
    dctx: *mut c_void,
    /// 0 once the last frame fed so far is complete.
    pending: usize,
    fed_any: bool,
}

impl ZstdStream {
    pub fn new() -> Result<ZstdStream> {
        let dctx = unsafe { ZSTD_createDCtx() };
        if dctx.is_null() {
            return Err(NativeError::Internal("ZSTD_createDCtx: out of memory".into()));
        }
        unsafe { ZSTD_DCtx_setParameter(dctx, ZSTD_D_WINDOW_LOG_MAX, WINDOW_LOG_LIMIT) };
        Ok(ZstdStream { dctx, pending: 0, fed_any: false })
    }

    /// Decodes all of `input`, returning whatever output it produced (maybe nothing yet).
    pub fn push(&mut self, input: &[u8]) -> Result<Vec<u8>> {
        let mut out: Vec<u8> = Vec::with_capacity(OUT_STEP.max(input.len() * 4));
        let mut inp = InBuffer { src: input.as_ptr().cast(), size: input.len(), pos: 0 };
        if !input.is_empty() {
            self.fed_any = true;
        }
        loop {
            if out.capacity() - out.len() < OUT_STEP / 4 {
                out.reserve(OUT_STEP);
            }
            let room = out.capacity() - out.len();
            let mut o = OutBuffer { dst: unsafe { out.as_mut_ptr().add(out.len()) }.cast(), size: room, pos: 0 };
            let r = unsafe { ZSTD_decompressStream(self.dctx, &mut o, &mut inp) };
            if unsafe { ZSTD_isError(r) } != 0 {
                let name = unsafe { CStr::from_ptr(ZSTD_getErrorName(r)) }.to_string_lossy().into_owned();
                return Err(NativeError::Corrupt(format!("zstd stream: {name}")));
            }
            unsafe { out.set_len(out.len() + o.pos) };
            self.pending = r;
            // done when the input is used up and the decoder did not fill the room it had
            if inp.pos == inp.size && o.pos < room {
                return Ok(out);
            }
        }
    }

    /// Checks that the stream ended on a frame boundary.
    pub fn finish(&self) -> Result<()> {
        if !self.fed_any {
            return Err(NativeError::Corrupt("zstd stream: no data".into()));
        }
        if self.pending != 0 {
            return Err(NativeError::Corrupt("zstd stream: truncated (input ended inside a frame)".into()));
        }
        Ok(())
    }
}

impl Drop for ZstdStream {
    fn drop(&mut self) {
        unsafe { ZSTD_freeDCtx(self.dctx) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{compress, Codec};

    #[test]
    fn decodes_in_pieces_and_across_frames() {
        let a: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
        let b = vec![7u8; 100_000];
        let mut z = compress(Codec::Zstd, &a, 3).unwrap();
        z.extend(compress(Codec::Zstd, &b, 3).unwrap());
        let mut s = ZstdStream::new().unwrap();
        let mut out = Vec::new();
        for piece in z.chunks(65536) {
            out.extend(s.push(piece).unwrap());
        }
        s.finish().unwrap();
        let mut want = a.clone();
        want.extend(&b);
        assert_eq!(out, want);
    }

    #[test]
    fn truncation_is_detected() {
        let z = compress(Codec::Zstd, &vec![1u8; 500_000], 3).unwrap();
        let mut s = ZstdStream::new().unwrap();
        s.push(&z[..z.len() - 3]).unwrap();
        assert!(s.finish().is_err());
    }
}
