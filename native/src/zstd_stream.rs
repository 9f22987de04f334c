//! Streaming zstd decoding for layer tars (`.tar.zst`), where input arrives in network-sized
//! pieces and the whole stream never fits in memory. Each stream owns its context.
//!
//! Output comes out in pieces the caller sizes and pulls one by one: a few KiB of input can
//! expand to gigabytes (a decompression bomb), so no call may decode a whole input.

use crate::error::{arg, NativeError, Result};
use std::os::raw::c_void;
use crate::zstd_ffi::*;
use std::ffi::CStr;


/// The output piece to pull at a time: large enough that the per-call cost vanishes, small
/// enough that memory stays bounded whatever the compression ratio.
pub const OUT_PIECE: usize = 1 << 20;

pub struct ZstdStream {
    dctx: *mut c_void,
    /// The compressed piece being decoded (a copy: the caller's buffer may be reused) and how
    /// much of it the decoder has taken.
    input: Vec<u8>,
    taken: usize,
    /// All of `input` is taken and everything it completed has been pulled.
    drained: bool,
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
        unsafe { ZSTD_DCtx_setParameter(dctx, ZSTD_D_WINDOW_LOG_MAX, ZSTD_WINDOW_LOG_LIMIT) };
        Ok(ZstdStream { dctx, input: Vec::new(), taken: 0, drained: true, pending: 0, fed_any: false })
    }

    /// Feeds the next compressed piece; `pull_into` then returns its output.
    pub fn push(&mut self, input: &[u8]) -> Result<()> {
        if !self.drained {
            return arg("zstd stream: pull the previous input's output (until it is empty) before pushing more");
        }
        self.input.clear();
        self.input.extend_from_slice(input);
        self.taken = 0;
        self.drained = false;
        self.fed_any |= !input.is_empty();
        Ok(())
    }

    /// True once the pushed input is all decoded and its output all pulled.
    pub fn drained(&self) -> bool {
        self.drained
    }

    /// Decodes the next piece of output into `dst` (`OUT_PIECE` bytes suit), returning its length:
    /// `dst` is filled unless the pushed input runs out first; 0 once it is drained.
    pub fn pull_into(&mut self, dst: &mut [u8]) -> Result<usize> {
        let mut filled = 0;
        // a call stops at each frame's end: go on until `dst` is full or the input used up
        while filled < dst.len() && !self.drained {
            if self.taken == self.input.len() && self.pending == 0 {
                // between frames with no input left: a call now would start waiting for a next frame
                self.drained = true;
                break;
            }
            let rest = &self.input[self.taken..];
            let mut inp = ZstdInBuffer { src: rest.as_ptr().cast(), size: rest.len(), pos: 0 };
            let room = dst.len() - filled;
            let mut o = ZstdOutBuffer { dst: dst[filled..].as_mut_ptr().cast(), size: room, pos: 0 };
            let r = unsafe { ZSTD_decompressStream(self.dctx, &mut o, &mut inp) };
            if unsafe { ZSTD_isError(r) } != 0 {
                let name = unsafe { CStr::from_ptr(ZSTD_getErrorName(r)) }.to_string_lossy().into_owned();
                return Err(NativeError::Corrupt(format!("zstd stream: {name}")));
            }
            filled += o.pos;
            self.taken += inp.pos;
            self.pending = r;
            // room left over: the decoder holds nothing more for the input it was given
            self.drained = self.taken == self.input.len() && o.pos < room;
        }
        Ok(filled)
    }

    /// Checks that the stream ended on a frame boundary.
    pub fn finish(&self) -> Result<()> {
        if !self.drained {
            return arg("zstd stream: finished before the last input's output was pulled");
        }
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

    /// Pushes `z` in `piece`-sized parts, pulling after each: the output and the largest pull.
    fn decode(s: &mut ZstdStream, z: &[u8], piece: usize) -> (Vec<u8>, usize) {
        let (mut out, mut largest) = (Vec::new(), 0);
        let mut dst = vec![0u8; OUT_PIECE];
        for p in z.chunks(piece.max(1)) {
            s.push(p).unwrap();
            loop {
                let n = s.pull_into(&mut dst).unwrap();
                if n == 0 { break; }
                largest = largest.max(n);
                out.extend(&dst[..n]);
            }
            assert!(s.drained());
        }
        (out, largest)
    }

    #[test]
    fn decodes_in_pieces_and_across_frames() {
        let a: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
        let b = vec![7u8; 100_000];
        let mut z = compress(Codec::Zstd, &a, 3).unwrap();
        z.extend(compress(Codec::Zstd, &b, 3).unwrap());
        let mut want = a.clone();
        want.extend(&b);
        for piece in [1, 65536, z.len()] {
            let mut s = ZstdStream::new().unwrap();
            assert_eq!(decode(&mut s, &z, piece).0, want, "pieces of {piece}");
            // an empty push between frames is no truncation
            s.push(&[]).unwrap();
            assert_eq!(s.pull_into(&mut [0u8; 16]).unwrap(), 0);
            s.finish().unwrap();
        }
    }

    #[test]
    fn a_bomb_comes_out_in_bounded_pieces() {
        let z = compress(Codec::Zstd, &vec![0u8; 64 << 20], 3).unwrap();
        assert!(z.len() < 64 << 10);
        let mut s = ZstdStream::new().unwrap();
        let (out, largest) = decode(&mut s, &z, z.len());
        s.finish().unwrap();
        assert_eq!(out.len(), 64 << 20);
        assert!(out.iter().all(|&b| b == 0));
        assert_eq!(largest, OUT_PIECE);
    }

    #[test]
    fn pushing_before_the_output_is_pulled_is_refused() {
        let z = compress(Codec::Zstd, &vec![0u8; 4 << 20], 3).unwrap();
        let mut s = ZstdStream::new().unwrap();
        s.push(&z).unwrap();
        assert_eq!(s.pull_into(&mut vec![0u8; OUT_PIECE]).unwrap(), OUT_PIECE);
        assert!(matches!(s.push(&z), Err(NativeError::Argument(_))));
        assert!(matches!(s.finish(), Err(NativeError::Argument(_))));
    }

    #[test]
    fn truncation_is_detected() {
        let z = compress(Codec::Zstd, &vec![1u8; 500_000], 3).unwrap();
        let mut s = ZstdStream::new().unwrap();
        decode(&mut s, &z[..z.len() - 3], z.len());
        assert!(s.finish().is_err());
    }
}
