//! Chunk codecs through the C libraries themselves: libzstd (dynamic; every Debian system has it),
//! liblz4 and libdeflate (static, so the addon needs no extra runtime package).

use crate::error::{arg, NativeError, Result};
use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::CStr;
use std::os::raw::{c_char, c_int, c_ulonglong, c_void};
use crate::zstd_ffi::*;


#[link(name = "lz4", kind = "static")]
extern "C" {
    fn LZ4_compress_default(src: *const c_char, dst: *mut c_char, len: c_int, cap: c_int) -> c_int;
    fn LZ4_decompress_safe(src: *const c_char, dst: *mut c_char, len: c_int, cap: c_int) -> c_int;
    fn LZ4_compressBound(len: c_int) -> c_int;
}

#[link(name = "deflate", kind = "static")]
extern "C" {
    fn libdeflate_alloc_compressor(level: c_int) -> *mut c_void;
    fn libdeflate_alloc_decompressor() -> *mut c_void;
    fn libdeflate_deflate_compress(c: *mut c_void, src: *const c_void, len: usize, dst: *mut c_void, cap: usize) -> usize;
    fn libdeflate_gzip_compress(c: *mut c_void, src: *const c_void, len: usize, dst: *mut c_void, cap: usize) -> usize;
    fn libdeflate_deflate_compress_bound(c: *mut c_void, len: usize) -> usize;
    fn libdeflate_gzip_compress_bound(c: *mut c_void, len: usize) -> usize;
    fn libdeflate_deflate_decompress_ex(d: *mut c_void, src: *const c_void, len: usize, dst: *mut c_void,
        cap: usize, in_used: *mut usize, out_len: *mut usize) -> c_int;
    fn libdeflate_gzip_decompress_ex(d: *mut c_void, src: *const c_void, len: usize, dst: *mut c_void,
        cap: usize, in_used: *mut usize, out_len: *mut usize) -> c_int;
}

const ZSTD_CONTENTSIZE_UNKNOWN: c_ulonglong = u64::MAX;
const ZSTD_CONTENTSIZE_ERROR: c_ulonglong = u64::MAX - 1;
const ZSTD_RESET_SESSION_ONLY: c_int = 1;
const ZSTD_ERROR_DST_SIZE_TOO_SMALL: c_int = 70;
const LIBDEFLATE_SUCCESS: c_int = 0;
const LIBDEFLATE_INSUFFICIENT_SPACE: c_int = 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    Zstd,
    Lz4Block,
    Gzip,
    /// Raw deflate (RFC 1951), as inside gzip members and zran checkpoints.
    Deflate,
}

impl Codec {
    pub fn parse(name: &str) -> Result<Codec> {
        match name {
            "zstd" => Ok(Codec::Zstd),
            "lz4_block" => Ok(Codec::Lz4Block),
            "gzip" => Ok(Codec::Gzip),
            "deflate" => Ok(Codec::Deflate),
            _ => arg(format!("unknown codec '{name}' (expected zstd, lz4_block, gzip or deflate)")),
        }
    }
}

/// Per-thread library contexts: creating them per call would dominate small chunks.
struct Contexts {
    zstd_c: *mut c_void,
    zstd_d: *mut c_void,
    deflate_d: *mut c_void,
    deflate_c: HashMap<c_int, *mut c_void>,
}

thread_local! {
    static CTX: RefCell<Contexts> = RefCell::new(Contexts {
        zstd_c: std::ptr::null_mut(),
        zstd_d: std::ptr::null_mut(),
        deflate_d: std::ptr::null_mut(),
        deflate_c: HashMap::new(),
    });
}

fn non_null(p: *mut c_void, what: &str) -> Result<*mut c_void> {
    if p.is_null() { Err(NativeError::Internal(format!("{what}: out of memory"))) } else { Ok(p) }
}

fn with_ctx<T>(f: impl FnOnce(&mut Contexts) -> Result<T>) -> Result<T> {
    CTX.with(|c| f(&mut c.borrow_mut()))
}

unsafe fn zstd_err(code: usize) -> Option<String> {
    if ZSTD_isError(code) != 0 {
        Some(CStr::from_ptr(ZSTD_getErrorName(code)).to_string_lossy().into_owned())
    } else {
        None
    }
}

fn zstd_dctx(c: &mut Contexts) -> Result<*mut c_void> {
    if c.zstd_d.is_null() { c.zstd_d = non_null(unsafe { ZSTD_createDCtx() }, "ZSTD_createDCtx")?; }
    Ok(c.zstd_d)
}

fn deflate_dctx(c: &mut Contexts) -> Result<*mut c_void> {
    if c.deflate_d.is_null() {
        c.deflate_d = non_null(unsafe { libdeflate_alloc_decompressor() }, "libdeflate_alloc_decompressor")?;
    }
    Ok(c.deflate_d)
}

fn deflate_cctx(c: &mut Contexts, level: c_int) -> Result<*mut c_void> {
    if !(0..=12).contains(&level) {
        return arg(format!("gzip/deflate level {level} out of range 0..12"));
    }
    if let Some(p) = c.deflate_c.get(&level) { return Ok(*p); }
    let p = non_null(unsafe { libdeflate_alloc_compressor(level) }, "libdeflate_alloc_compressor")?;
    c.deflate_c.insert(level, p);
    Ok(p)
}

fn i32_len(len: usize, what: &str) -> Result<c_int> {
    c_int::try_from(len).map_err(|_| NativeError::Argument(format!("{what} of {len} bytes is too large for lz4")))
}

/// An empty Vec with room for `n` bytes; a size the allocator refuses is an error, not an abort.
fn alloc(n: usize) -> Result<Vec<u8>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| NativeError::Size(format!("cannot allocate {n} bytes for the output")))?;
    Ok(v)
}

/// Runs `fill(dst_ptr, capacity) -> written` over a fresh Vec, keeping only the written bytes.
fn fill_vec(cap: usize, fill: impl FnOnce(*mut u8, usize) -> Result<usize>) -> Result<Vec<u8>> {
    let mut out = alloc(cap)?;
    let n = fill(out.as_mut_ptr(), cap)?;
    assert!(n <= cap);
    unsafe { out.set_len(n) };
    Ok(out)
}

pub fn compress(codec: Codec, src: &[u8], level: i32) -> Result<Vec<u8>> {
    with_ctx(|c| unsafe {
        match codec {
            Codec::Zstd => {
                if level < ZSTD_minCLevel() || level > ZSTD_maxCLevel() {
                    return arg(format!("zstd level {level} out of range"));
                }
                if c.zstd_c.is_null() { c.zstd_c = non_null(ZSTD_createCCtx(), "ZSTD_createCCtx")?; }
                let cctx = c.zstd_c;
                fill_vec(ZSTD_compressBound(src.len()), |dst, cap| {
                    let r = ZSTD_compressCCtx(cctx, dst.cast(), cap, src.as_ptr().cast(), src.len(), level);
                    match zstd_err(r) { Some(e) => Err(NativeError::Internal(format!("zstd compress: {e}"))), None => Ok(r) }
                })
            }
            Codec::Lz4Block => {
                let len = i32_len(src.len(), "lz4 input")?;
                fill_vec(LZ4_compressBound(len) as usize, |dst, cap| {
                    let r = LZ4_compress_default(src.as_ptr().cast(), dst.cast(), len, cap as c_int);
                    if r <= 0 && len > 0 { Err(NativeError::Internal("lz4 compress failed".into())) } else { Ok(r as usize) }
                })
            }
            Codec::Gzip | Codec::Deflate => {
                let cc = deflate_cctx(c, level)?;
                let gzip = codec == Codec::Gzip;
                let bound = if gzip { libdeflate_gzip_compress_bound(cc, src.len()) } else { libdeflate_deflate_compress_bound(cc, src.len()) };
                fill_vec(bound, |dst, cap| {
                    let f = if gzip { libdeflate_gzip_compress } else { libdeflate_deflate_compress };
                    match f(cc, src.as_ptr().cast(), src.len(), dst.cast(), cap) {
                        0 => Err(NativeError::Internal("libdeflate compress failed".into())),
                        n => Ok(n),
                    }
                })
            }
        }
    })
}

/// Decompresses `src` into exactly `dst`: anything that decodes to another size is an error.
/// Decodes the first gzip member of `src` straight into `dst` when it holds exactly `dst.len()` bytes
/// (libdeflate: one pass, CRC and length checked); false when it does not fit that way, for the
/// caller to decode it otherwise.
pub fn gzip_member_exact(src: &[u8], dst: &mut [u8]) -> Result<bool> {
    with_ctx(|c| {
        let d = deflate_dctx(c)?;
        let (mut used, mut wrote) = (0usize, 0usize);
        let r = unsafe { libdeflate_gzip_decompress_ex(d, src.as_ptr().cast(), src.len(), dst.as_mut_ptr().cast(), dst.len(), &mut used, &mut wrote) };
        Ok(r == LIBDEFLATE_SUCCESS && wrote == dst.len())
    })
}

pub fn decompress_into(codec: Codec, src: &[u8], dst: &mut [u8]) -> Result<()> {
    let n = decode_into(codec, src, dst.as_mut_ptr(), dst.len())?;
    match n {
        Decoded::Exact(n) if n == dst.len() => Ok(()),
        Decoded::Exact(n) => Err(NativeError::Size(format!("{codec:?} data decoded to {n} bytes, expected {}", dst.len()))),
        Decoded::TooLarge => Err(NativeError::Size(format!("{codec:?} data decodes to more than the expected {} bytes", dst.len()))),
    }
}

enum Decoded {
    Exact(usize),
    TooLarge,
}

/// One decode into a fixed buffer; multi-member gzip and multi-frame zstd are decoded whole.
fn decode_into(codec: Codec, src: &[u8], dst: *mut u8, cap: usize) -> Result<Decoded> {
    with_ctx(|c| unsafe {
        match codec {
            Codec::Zstd => {
                let d = zstd_dctx(c)?;
                let r = ZSTD_decompressDCtx(d, dst.cast(), cap, src.as_ptr().cast(), src.len());
                match zstd_err(r) {
                    None => Ok(Decoded::Exact(r)),
                    Some(_) if ZSTD_getErrorCode(r) == ZSTD_ERROR_DST_SIZE_TOO_SMALL => Ok(Decoded::TooLarge),
                    Some(e) => Err(NativeError::Corrupt(format!("zstd: {e}"))),
                }
            }
            Codec::Lz4Block => {
                let len = i32_len(src.len(), "lz4 input")?;
                let capi = i32_len(cap, "lz4 output")?;
                if len == 0 {
                    return if cap == 0 { Ok(Decoded::Exact(0)) } else { Err(NativeError::Corrupt("lz4: empty input".into())) };
                }
                let r = LZ4_decompress_safe(src.as_ptr().cast(), dst.cast(), len, capi);
                if r < 0 { Err(NativeError::Corrupt(format!("lz4: malformed block (error {r}) or output larger than {cap} bytes"))) } else { Ok(Decoded::Exact(r as usize)) }
            }
            Codec::Gzip | Codec::Deflate => {
                let d = deflate_dctx(c)?;
                let f = if codec == Codec::Gzip { libdeflate_gzip_decompress_ex } else { libdeflate_deflate_decompress_ex };
                let (mut ip, mut op) = (0usize, 0usize);
                // gzip streams may hold several members (pigz, eStargz): decode them one after another
                loop {
                    let (mut used, mut wrote) = (0usize, 0usize);
                    let r = f(d, src.as_ptr().add(ip).cast(), src.len() - ip, dst.add(op).cast(), cap - op, &mut used, &mut wrote);
                    match r {
                        LIBDEFLATE_SUCCESS => {}
                        LIBDEFLATE_INSUFFICIENT_SPACE => return Ok(Decoded::TooLarge),
                        _ => return Err(NativeError::Corrupt(format!("{}: invalid or truncated data at byte {ip}", if codec == Codec::Gzip { "gzip" } else { "deflate" }))),
                    }
                    ip += used;
                    op += wrote;
                    if codec == Codec::Deflate || ip >= src.len() { break; }
                }
                if codec == Codec::Deflate && ip != src.len() {
                    return Err(NativeError::Corrupt(format!("deflate: {} trailing bytes after the stream", src.len() - ip)));
                }
                Ok(Decoded::Exact(op))
            }
        }
    })
}

/// Decompresses to a new buffer. With `size`, the output must be exactly that long; without it the
/// size is taken from the data where the format records it, else grown up to `max` bytes.
pub fn decompress(codec: Codec, src: &[u8], size: Option<usize>, max: usize) -> Result<Vec<u8>> {
    if let Some(n) = size {
        if n > max {
            return Err(NativeError::Size(format!("expected size {n} exceeds the limit of {max} bytes")));
        }
        let mut out = alloc(n)?;
        // SAFETY: decompress_into writes exactly n bytes or fails, and on failure out is dropped unread.
        unsafe { out.set_len(n) };
        decompress_into(codec, src, &mut out)?;
        return Ok(out);
    }
    match codec {
        Codec::Lz4Block => arg("lz4_block data does not record its size: pass the decompressed size"),
        Codec::Zstd => zstd_decompress_unsized(src, max),
        Codec::Gzip | Codec::Deflate => grow_decode(codec, src, initial_guess(codec, src), max),
    }
}

fn initial_guess(codec: Codec, src: &[u8]) -> usize {
    // a gzip trailer records the last member's size mod 2^32: a good first guess for one member
    if codec == Codec::Gzip && src.len() >= 18 {
        let t = &src[src.len() - 4..];
        return (u32::from_le_bytes([t[0], t[1], t[2], t[3]]) as usize).max(4096);
    }
    (src.len() * 4).max(4096)
}

fn grow_decode(codec: Codec, src: &[u8], guess: usize, max: usize) -> Result<Vec<u8>> {
    let mut cap = guess.min(max);
    loop {
        let mut out = alloc(cap)?;
        match decode_into(codec, src, out.as_mut_ptr(), cap)? {
            Decoded::Exact(n) => {
                unsafe { out.set_len(n) };
                return Ok(out);
            }
            Decoded::TooLarge if cap >= max => {
                return Err(NativeError::Size(format!("{codec:?} data decodes to more than the limit of {max} bytes")));
            }
            Decoded::TooLarge => cap = cap.saturating_mul(2).min(max),
        }
    }
}

fn zstd_decompress_unsized(src: &[u8], max: usize) -> Result<Vec<u8>> {
    let declared = unsafe { ZSTD_getFrameContentSize(src.as_ptr().cast(), src.len()) };
    if declared == ZSTD_CONTENTSIZE_ERROR {
        return Err(NativeError::Corrupt("zstd: not a zstd frame".into()));
    }
    if declared != ZSTD_CONTENTSIZE_UNKNOWN && (declared as usize) <= max {
        // single frame with a declared size: one shot; more frames fall through to streaming
        let n = declared as usize;
        let mut out = alloc(n)?;
        if let Decoded::Exact(w) = decode_into(Codec::Zstd, src, out.as_mut_ptr(), n)? {
            if w == n {
                unsafe { out.set_len(n) };
                return Ok(out);
            }
        }
    }
    zstd_stream(src, max)
}

fn zstd_stream(src: &[u8], max: usize) -> Result<Vec<u8>> {
    with_ctx(|c| unsafe {
        let d = zstd_dctx(c)?;
        ZSTD_DCtx_reset(d, ZSTD_RESET_SESSION_ONLY);
        let mut out = alloc((src.len().saturating_mul(4)).clamp(4096, max.max(1)).min(max))?;
        let mut inp = ZstdInBuffer { src: src.as_ptr().cast(), size: src.len(), pos: 0 };
        let mut last = 1usize;
        while inp.pos < inp.size || last != 0 {
            if out.len() >= max {
                return Err(NativeError::Size(format!("zstd data decodes to more than the limit of {max} bytes")));
            }
            if out.len() == out.capacity() {
                let grow = out.capacity().max(4096).min(max - out.len());
                out.try_reserve_exact(grow).map_err(|_| NativeError::Size(format!("cannot allocate {grow} more bytes for the output")))?;
            }
            let room = out.capacity().min(max) - out.len();
            let mut o = ZstdOutBuffer { dst: out.as_mut_ptr().add(out.len()).cast(), size: room, pos: 0 };
            let before = inp.pos;
            last = ZSTD_decompressStream(d, &mut o, &mut inp);
            if let Some(e) = zstd_err(last) {
                return Err(NativeError::Corrupt(format!("zstd: {e}")));
            }
            out.set_len(out.len() + o.pos);
            if inp.pos == inp.size && last != 0 && o.pos == 0 && before == inp.pos {
                return Err(NativeError::Corrupt("zstd: truncated frame".into()));
            }
        }
        Ok(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(n: usize) -> Vec<u8> {
        (0..n).map(|i| ((i / 7) % 251) as u8).collect()
    }

    #[test]
    fn round_trips() {
        for codec in [Codec::Zstd, Codec::Lz4Block, Codec::Gzip, Codec::Deflate] {
            for n in [0usize, 1, 4096, 1 << 20] {
                let data = sample(n);
                let level = if codec == Codec::Zstd { 3 } else { 6 };
                let c = compress(codec, &data, level).unwrap();
                assert_eq!(decompress(codec, &c, Some(n), usize::MAX).unwrap(), data, "{codec:?} {n}");
                if codec != Codec::Lz4Block {
                    assert_eq!(decompress(codec, &c, None, 1 << 30).unwrap(), data, "{codec:?} {n} unsized");
                }
            }
        }
    }

    #[test]
    fn wrong_size_and_corruption_are_errors() {
        let data = sample(100_000);
        for codec in [Codec::Zstd, Codec::Lz4Block, Codec::Gzip, Codec::Deflate] {
            let c = compress(codec, &data, 3).unwrap();
            let short = decompress(codec, &c, Some(99_999), usize::MAX);
            // an lz4 block cannot tell "too small a buffer" from "malformed", the others can
            if codec == Codec::Lz4Block { assert!(short.is_err()) } else { assert!(matches!(short, Err(NativeError::Size(_))), "{codec:?} short") }
            assert!(decompress(codec, &c, Some(100_001), usize::MAX).is_err(), "{codec:?} long");
            assert!(decompress(codec, &c[..c.len() / 2], Some(100_000), usize::MAX).is_err(), "{codec:?} truncated");
        }
    }

    #[test]
    fn bomb_with_odd_limit_is_a_size_error() {
        let c = compress(Codec::Zstd, &vec![0u8; 8 << 20], 3).unwrap();
        assert!(matches!(decompress(Codec::Zstd, &c, None, 1_000_000), Err(NativeError::Size(_))));
        assert!(matches!(decompress(Codec::Zstd, &c, Some(1 << 50), usize::MAX), Err(NativeError::Size(_))));
    }

    #[test]
    fn bomb_is_capped() {
        let data = vec![0u8; 8 << 20];
        for codec in [Codec::Zstd, Codec::Gzip] {
            let c = compress(codec, &data, 3).unwrap();
            assert!(matches!(decompress(codec, &c, None, 1 << 20), Err(NativeError::Size(_))), "{codec:?}");
        }
    }
}
