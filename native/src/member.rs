//! The chunks of a stargz-family layer used as it is: the FIRST gzip member (eStargz) or zstd
//! frame (zstd:chunked) at the start of some stored bytes, of which only `skip + dst.len()`
//! decoded bytes are wanted. The member may go on far past them (tar padding and headers, or a
//! decompression bomb) and more members may follow: decoding stops once `dst` is full, so the
//! work is bounded by what is wanted, never by what the member holds. A member that ends (or
//! input that runs out) before `dst` is full is corrupt.
//!
//! Nothing past the wanted bytes is read, so the gzip trailer's CRC is not checked: callers
//! verify the chunk's own digest.

use crate::codec::{gzip_member_exact, Codec};
use crate::digest::{DigestAlgo, Hasher};
use crate::error::{arg, NativeError, Result};
use std::cell::RefCell;
use std::ffi::CStr;
use std::os::raw::{c_int, c_void};
use crate::zlib_ffi::*;
use crate::zstd_ffi::*;

const ZSTD_RESET_SESSION_ONLY: c_int = 1;

/// Where skipped output goes, a piece at a time.
const SKIP_PIECE: usize = 64 << 10;

/// One bounded step of a decoder: fills some of `out`, or says the member has ended.
pub(crate) trait Member {
    /// Bytes written to `out` (at least one), or None once the member ended.
    fn step(&mut self, out: &mut [u8]) -> Result<Option<usize>>;
}

/// Decodes the first member of `src` (gzip or zstd), drops its first `skip` bytes and fills `dst`
/// with the next ones, decoding nothing further.
pub fn decode_first_member(codec: Codec, src: &[u8], skip: usize, dst: &mut [u8]) -> Result<()> {
    match codec {
        // most pieces are a member of their own and exactly their size: one libdeflate pass
        Codec::Gzip if skip == 0 && gzip_member_exact(src, dst)? => Ok(()),
        Codec::Gzip => fill(&mut GzipMember::new(src)?, skip, dst),
        Codec::Zstd => ZSTD_DCTX.with(|d| fill(&mut ZstdMember::new(&mut d.borrow_mut(), src)?, skip, dst)),
        _ => arg(format!("{codec:?} has no members: gzip or zstd expected")),
    }
}

pub(crate) fn fill(member: &mut dyn Member, skip: usize, dst: &mut [u8]) -> Result<()> {
    let wanted = skip.saturating_add(dst.len());
    let mut scratch = vec![0u8; skip.min(SKIP_PIECE)];
    let mut done = 0;
    while done < wanted {
        let out = if done < skip {
            let n = (skip - done).min(scratch.len());
            &mut scratch[..n]
        } else {
            &mut dst[done - skip..]
        };
        match member.step(out)? {
            Some(n) => done += n,
            None => return Err(NativeError::Corrupt(format!("member ends after {done} of the {wanted} bytes wanted"))),
        }
    }
    Ok(())
}

struct GzipMember<'a> {
    inflater: Inflater,
    src: &'a [u8],
    taken: usize,
    ended: bool,
}

impl<'a> GzipMember<'a> {
    fn new(src: &'a [u8]) -> Result<GzipMember<'a>> {
        Ok(GzipMember { inflater: Inflater::new(GZIP_WINDOW_BITS)?, src, taken: 0, ended: false })
    }
}

impl Member for GzipMember<'_> {
    fn step(&mut self, out: &mut [u8]) -> Result<Option<usize>> {
        if self.ended {
            return Ok(None);
        }
        let (r, taken, n) = self.inflater.run(&self.src[self.taken..], out, Z_NO_FLUSH);
        self.taken += taken;
        match r {
            Z_OK if n > 0 => Ok(Some(n)),
            Z_STREAM_END => {
                self.ended = true;
                Ok(if n > 0 { Some(n) } else { None })
            }
            // no progress with room to spare: the input ran out inside the member
            Z_OK | Z_BUF_ERROR => Err(NativeError::Corrupt("gzip member truncated".into())),
            Z_MEM_ERROR => Err(NativeError::Internal("inflate: out of memory".into())),
            _ => Err(NativeError::Corrupt(format!("gzip member: {}", self.inflater.message()))),
        }
    }
}

/// The thread's zstd context for members, with its window limit set once.
struct ZstdDctx(*mut c_void);

thread_local! {
    static ZSTD_DCTX: RefCell<ZstdDctx> = RefCell::new(ZstdDctx(std::ptr::null_mut()));
}

struct ZstdMember<'a> {
    dctx: *mut c_void,
    src: &'a [u8],
    taken: usize,
    ended: bool,
}

impl<'a> ZstdMember<'a> {
    fn new(ctx: &mut ZstdDctx, src: &'a [u8]) -> Result<ZstdMember<'a>> {
        if ctx.0.is_null() {
            let d = unsafe { ZSTD_createDCtx() };
            if d.is_null() {
                return Err(NativeError::Internal("ZSTD_createDCtx: out of memory".into()));
            }
            unsafe { ZSTD_DCtx_setParameter(d, ZSTD_D_WINDOW_LOG_MAX, ZSTD_WINDOW_LOG_LIMIT) };
            ctx.0 = d;
        }
        // a previous member may have been left half decoded
        unsafe { ZSTD_DCtx_reset(ctx.0, ZSTD_RESET_SESSION_ONLY) };
        Ok(ZstdMember { dctx: ctx.0, src, taken: 0, ended: false })
    }
}

impl Member for ZstdMember<'_> {
    fn step(&mut self, out: &mut [u8]) -> Result<Option<usize>> {
        while !self.ended {
            let rest = &self.src[self.taken..];
            let mut inp = ZstdInBuffer { src: rest.as_ptr().cast(), size: rest.len(), pos: 0 };
            let mut o = ZstdOutBuffer { dst: out.as_mut_ptr().cast(), size: out.len(), pos: 0 };
            let r = unsafe { ZSTD_decompressStream(self.dctx, &mut o, &mut inp) };
            if unsafe { ZSTD_isError(r) } != 0 {
                let name = unsafe { CStr::from_ptr(ZSTD_getErrorName(r)) }.to_string_lossy().into_owned();
                return Err(NativeError::Corrupt(format!("zstd frame: {name}")));
            }
            self.taken += inp.pos;
            // 0: the frame is decoded and flushed (the call stops there, before any next frame)
            self.ended = r == 0;
            if o.pos > 0 {
                return Ok(Some(o.pos));
            }
            // no output with room to spare and no input taken: the input ran out inside the frame
            if !self.ended && inp.pos == 0 {
                return Err(NativeError::Corrupt("zstd frame truncated".into()));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::compress;

    fn pattern(n: usize, seed: u32) -> Vec<u8> {
        (0..n as u32).map(|i| (i.wrapping_mul(2654435761).wrapping_add(seed) >> 13) as u8).collect()
    }

    fn decode(codec: Codec, src: &[u8], skip: usize, len: usize) -> Result<Vec<u8>> {
        let mut dst = vec![0u8; len];
        decode_first_member(codec, src, skip, &mut dst).map(|_| dst)
    }

    #[test]
    fn takes_the_wanted_bytes_of_the_first_member_only() {
        let a = pattern(300_000, 1);
        for codec in [Codec::Gzip, Codec::Zstd] {
            let mut src = compress(codec, &a, 3).unwrap();
            src.extend(compress(codec, &pattern(1000, 2), 3).unwrap());
            assert_eq!(decode(codec, &src, 0, a.len()).unwrap(), a);
            assert_eq!(decode(codec, &src, 100_001, 70_000).unwrap(), &a[100_001..170_001]);
            // past the first member's end: the next member is not read
            assert!(matches!(decode(codec, &src, 1, a.len()), Err(NativeError::Corrupt(_))));
        }
    }

    #[test]
    fn stops_once_the_wanted_bytes_are_out() {
        let mut a = pattern(5000, 3);
        a.extend(vec![0u8; 256 << 20]);
        for codec in [Codec::Gzip, Codec::Zstd] {
            let z = compress(codec, &a, 1).unwrap();
            // the compressed prefix that holds the first bytes is enough
            let cut = &z[..z.len() / 8];
            assert_eq!(decode(codec, cut, 1000, 4000).unwrap(), &a[1000..5000]);
        }
    }

    #[test]
    fn truncated_and_corrupt_members_are_errors() {
        let a = pattern(200_000, 4);
        for codec in [Codec::Gzip, Codec::Zstd] {
            let z = compress(codec, &a, 3).unwrap();
            assert!(matches!(decode(codec, &z[..z.len() / 2], 0, a.len()), Err(NativeError::Corrupt(_))));
            assert!(matches!(decode(codec, &z[..0], 0, 1), Err(NativeError::Corrupt(_))));
            assert!(matches!(decode(codec, b"not a member at all", 0, 1), Err(NativeError::Corrupt(_))));
        }
        assert!(matches!(decode(Codec::Lz4Block, &[0u8; 4], 0, 1), Err(NativeError::Argument(_))));
    }
}

/// A gzip member decoded as its bytes arrive (a chunk of an eStargz layer fetched over a slow link):
/// each piece pushed is inflated at once into the caller's output and hashed, so once the last piece
/// is in, the chunk is decoded and its digest known, rather than only then begun. As
/// decode_first_member: the first `skip` decoded bytes are dropped, the next `size` kept, nothing
/// past them decoded (input after that is ignored), and a member that ends before them is corrupt.
pub struct GzipMemberStream {
    inflater: Inflater,
    hasher: Hasher,
    skip: usize,
    scratch: Vec<u8>,
    filled: usize,
    size: usize,
}

impl GzipMemberStream {
    pub fn new(algo: DigestAlgo, skip: usize, size: usize) -> Result<GzipMemberStream> {
        Ok(GzipMemberStream { inflater: Inflater::new(GZIP_WINDOW_BITS)?, hasher: Hasher::new(algo), skip, scratch: vec![0u8; skip.min(SKIP_PIECE)], filled: 0, size })
    }

    /// Inflates the next piece of the member into `out` (the whole output, `size` bytes, the same
    /// each time); the bytes of it filled so far.
    pub fn push(&mut self, mut input: &[u8], out: &mut [u8]) -> Result<usize> {
        if out.len() != self.size {
            return arg(format!("output of {} bytes for a member stream of {}", out.len(), self.size));
        }
        while !input.is_empty() && self.filled < self.size {
            let piece = if self.skip > 0 {
                let n = self.skip.min(self.scratch.len());
                &mut self.scratch[..n]
            } else {
                &mut out[self.filled..]
            };
            let (r, taken, n) = self.inflater.run(input, piece, Z_NO_FLUSH);
            input = &input[taken..];
            if self.skip > 0 {
                self.skip -= n;
            } else {
                self.hasher.update(&out[self.filled..self.filled + n])?;
                self.filled += n;
            }
            match r {
                Z_STREAM_END if self.skip > 0 || self.filled < self.size => {
                    return Err(NativeError::Corrupt(format!("member ends after {} of the {} bytes wanted", self.filled, self.size)));
                }
                Z_STREAM_END => break,
                Z_OK if taken > 0 || n > 0 => {}
                // no progress: the piece is used up inside the member (more is to come)
                Z_OK | Z_BUF_ERROR => break,
                Z_MEM_ERROR => return Err(NativeError::Internal("inflate: out of memory".into())),
                _ => return Err(NativeError::Corrupt(format!("gzip member: {}", self.inflater.message()))),
            }
        }
        Ok(self.filled)
    }

    /// The digest of the kept bytes, once all of them are decoded.
    pub fn finish(&mut self) -> Result<[u8; 32]> {
        if self.filled < self.size {
            return Err(NativeError::Corrupt(format!("gzip member truncated: {} of the {} bytes wanted", self.filled, self.size)));
        }
        self.hasher.finish()
    }
}
