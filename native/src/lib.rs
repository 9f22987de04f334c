//! nydusify-native: the Node-API addon behind `src/native/`. Chunk codecs and digests, sync for
//! worker threads and batched on the libuv pool for the main thread. No napi crates: the Node-API
//! is declared by hand in `napi.rs`.

mod batch;
mod codec;
mod digest;
mod error;
mod js;
mod member;
mod napi;
mod flock;
mod fsnode;
mod mount;
mod netlink;
mod pidfd;
mod fdpass;
mod gzip_index;
mod zlib_ffi;
mod zstd_ffi;
mod zstd_stream;

use codec::Codec;
use digest::{DigestAlgo, Hasher};
use error::Result;
use napi::*;
use gzip_index::GzipIndexer;
use zstd_stream::ZstdStream;
use member::GzipMemberStream;

/// Output cap for decompression whose size the caller does not know (decompression bombs).
const DEFAULT_MAX_OUTPUT: usize = 1 << 30;

unsafe fn max_output(env: napi_env, v: napi_value) -> Result<usize> {
    Ok(js::opt_size(env, v, "maxSize")?.unwrap_or(DEFAULT_MAX_OUTPUT))
}

unsafe extern "C" fn compress(env: napi_env, info: napi_callback_info) -> napi_value {
    js::guard(env, || {
        let [c, src, level] = js::args::<3>(env, info)?;
        let codec = Codec::parse(&js::string(env, c, "codec")?)?;
        let out = codec::compress(codec, js::bytes(env, src, "input")?, js::int(env, level, "level")?)?;
        js::new_buffer_owned(env, out)
    })
}

unsafe extern "C" fn decompress(env: napi_env, info: napi_callback_info) -> napi_value {
    js::guard(env, || {
        let [c, src, size, max] = js::args::<4>(env, info)?;
        let codec = Codec::parse(&js::string(env, c, "codec")?)?;
        let size = js::opt_size(env, size, "size")?;
        let out = codec::decompress(codec, js::bytes(env, src, "input")?, size, max_output(env, max)?)?;
        js::new_buffer_owned(env, out)
    })
}

unsafe extern "C" fn decompress_into(env: napi_env, info: napi_callback_info) -> napi_value {
    js::guard(env, || {
        let [c, src, dst] = js::args::<3>(env, info)?;
        let codec = Codec::parse(&js::string(env, c, "codec")?)?;
        let dst = js::bytes(env, dst, "output")?;
        codec::decompress_into(codec, js::bytes(env, src, "input")?, dst)?;
        js::new_number(env, dst.len() as f64)
    })
}

unsafe extern "C" fn digest(env: napi_env, info: napi_callback_info) -> napi_value {
    js::guard(env, || {
        let [a, src] = js::args::<2>(env, info)?;
        let algo = DigestAlgo::parse(&js::string(env, a, "algorithm")?)?;
        js::new_buffer_copy(env, &digest::digest(algo, js::bytes(env, src, "input")?))
    })
}

unsafe extern "C" fn hasher_create(env: napi_env, info: napi_callback_info) -> napi_value {
    js::guard(env, || {
        let [a] = js::args::<1>(env, info)?;
        let algo = DigestAlgo::parse(&js::string(env, a, "algorithm")?)?;
        js::new_external(env, Hasher::new(algo))
    })
}

unsafe extern "C" fn hasher_clone(env: napi_env, info: napi_callback_info) -> napi_value {
    js::guard(env, || {
        let [h] = js::args::<1>(env, info)?;
        let copy = js::external_arg::<Hasher>(env, h)?.clone();
        js::new_external(env, copy)
    })
}

unsafe extern "C" fn hasher_update(env: napi_env, info: napi_callback_info) -> napi_value {
    js::guard(env, || {
        let [h, src] = js::args::<2>(env, info)?;
        js::external_arg::<Hasher>(env, h)?.update(js::bytes(env, src, "input")?)?;
        js::undefined(env)
    })
}

unsafe extern "C" fn hasher_finish(env: napi_env, info: napi_callback_info) -> napi_value {
    js::guard(env, || {
        let [h] = js::args::<1>(env, info)?;
        let d = js::external_arg::<Hasher>(env, h)?.finish()?;
        js::new_buffer_copy(env, &d)
    })
}

unsafe extern "C" fn compress_batch(env: napi_env, info: napi_callback_info) -> napi_value {
    js::guard(env, || {
        let [c, srcs, level] = js::args::<3>(env, info)?;
        let codec = Codec::parse(&js::string(env, c, "codec")?)?;
        batch::queue(env, batch::BatchOp::Compress(codec, js::int(env, level, "level")?), srcs, None, None)
    })
}

unsafe extern "C" fn decompress_batch(env: napi_env, info: napi_callback_info) -> napi_value {
    js::guard(env, || {
        let [c, srcs, sizes, max] = js::args::<4>(env, info)?;
        let codec = Codec::parse(&js::string(env, c, "codec")?)?;
        let sizes = if js::is_nullish(env, sizes)? { None } else { Some(sizes) };
        batch::queue(env, batch::BatchOp::Decompress(codec, max_output(env, max)?), srcs, sizes, None)
    })
}

unsafe extern "C" fn digest_batch(env: napi_env, info: napi_callback_info) -> napi_value {
    js::guard(env, || {
        let [a, srcs] = js::args::<2>(env, info)?;
        let algo = DigestAlgo::parse(&js::string(env, a, "algorithm")?)?;
        batch::queue(env, batch::BatchOp::Digest(algo), srcs, None, None)
    })
}

unsafe extern "C" fn member_decode_into(env: napi_env, info: napi_callback_info) -> napi_value {
    js::guard(env, || {
        let [c, src, skip, dst] = js::args::<4>(env, info)?;
        let codec = Codec::parse(&js::string(env, c, "codec")?)?;
        let dst = js::bytes(env, dst, "output")?;
        member::decode_first_member(codec, js::bytes(env, src, "input")?, js::size(env, skip, "skip")?, dst)?;
        js::new_number(env, dst.len() as f64)
    })
}

unsafe extern "C" fn member_decode_batch(env: napi_env, info: napi_callback_info) -> napi_value {
    js::guard(env, || {
        let [c, srcs, skips, sizes] = js::args::<4>(env, info)?;
        let codec = Codec::parse(&js::string(env, c, "codec")?)?;
        batch::queue(env, batch::BatchOp::Member(codec), srcs, Some(sizes), Some(skips))
    })
}

unsafe extern "C" fn gzip_index_create(env: napi_env, info: napi_callback_info) -> napi_value {
    js::guard(env, || {
        let [span] = js::args::<1>(env, info)?;
        js::new_external(env, GzipIndexer::new(js::size(env, span, "span")?)?)
    })
}

unsafe extern "C" fn gzip_index_push(env: napi_env, info: napi_callback_info) -> napi_value {
    js::guard(env, || {
        let [h, src] = js::args::<2>(env, info)?;
        js::external_arg::<GzipIndexer>(env, h)?.push(js::bytes(env, src, "input")?)?;
        js::undefined(env)
    })
}

unsafe extern "C" fn gzip_index_pull(env: napi_env, info: napi_callback_info) -> napi_value {
    js::guard(env, || {
        let [h] = js::args::<1>(env, info)?;
        let ix = js::external_arg::<GzipIndexer>(env, h)?;
        if ix.drained() {
            return js::new_buffer_copy(env, &[]);
        }
        let (piece, dst) = js::new_buffer(env, gzip_index::OUT_PIECE)?;
        let n = ix.pull_into(dst)?;
        if n == dst.len() { Ok(piece) } else { js::new_buffer_copy(env, &dst[..n]) }
    })
}

/// [marks (f64 input, output pairs, little-endian), [[input, output, bits, window], …]]
unsafe extern "C" fn gzip_index_take(env: napi_env, info: napi_callback_info) -> napi_value {
    js::guard(env, || {
        let [h] = js::args::<1>(env, info)?;
        let (marks, cps) = js::external_arg::<GzipIndexer>(env, h)?.take();
        let bytes: Vec<u8> = marks.iter().flat_map(|m| m.to_le_bytes()).collect();
        let mut items = Vec::with_capacity(cps.len());
        for c in &cps {
            let fields = [js::new_number(env, c.input as f64)?, js::new_number(env, c.output as f64)?, js::new_number(env, c.bits as f64)?, js::new_buffer_copy(env, &c.window)?];
            items.push(js::new_array(env, &fields)?);
        }
        let parts = [js::new_buffer_copy(env, &bytes)?, js::new_array(env, &items)?];
        js::new_array(env, &parts)
    })
}

unsafe extern "C" fn gzip_index_finish(env: napi_env, info: napi_callback_info) -> napi_value {
    js::guard(env, || {
        let [h] = js::args::<1>(env, info)?;
        js::external_arg::<GzipIndexer>(env, h)?.finish()?;
        js::undefined(env)
    })
}

unsafe extern "C" fn gzip_extract_into(env: napi_env, info: napi_callback_info) -> napi_value {
    js::guard(env, || {
        let [src, bits, window, skip, dst] = js::args::<5>(env, info)?;
        let bits = u8::try_from(js::size(env, bits, "bits")?).map_err(|_| error::NativeError::Argument("bits out of range".into()))?;
        let dst = js::bytes(env, dst, "output")?;
        gzip_index::extract(js::bytes(env, src, "input")?, bits, js::bytes(env, window, "window")?, js::size(env, skip, "skip")?, dst)?;
        js::new_number(env, dst.len() as f64)
    })
}

unsafe extern "C" fn zstd_stream_create(env: napi_env, _info: napi_callback_info) -> napi_value {
    js::guard(env, || {
        js::new_external(env, ZstdStream::new()?)
    })
}

unsafe extern "C" fn zstd_stream_push(env: napi_env, info: napi_callback_info) -> napi_value {
    js::guard(env, || {
        let [h, src] = js::args::<2>(env, info)?;
        js::external_arg::<ZstdStream>(env, h)?.push(js::bytes(env, src, "input")?)?;
        js::undefined(env)
    })
}

unsafe extern "C" fn zstd_stream_pull(env: napi_env, info: napi_callback_info) -> napi_value {
    js::guard(env, || {
        let [h] = js::args::<1>(env, info)?;
        let stream = js::external_arg::<ZstdStream>(env, h)?;
        if stream.drained() {
            return js::new_buffer_copy(env, &[]);
        }
        // straight into memory V8 owns: freed by garbage collection alone, with no finalizer
        // waiting for the event loop (a consumer that loops on microtasks would pile them up)
        let (piece, dst) = js::new_buffer(env, zstd_stream::OUT_PIECE)?;
        let n = stream.pull_into(dst)?;
        if n == dst.len() { Ok(piece) } else { js::new_buffer_copy(env, &dst[..n]) }
    })
}

unsafe extern "C" fn zstd_stream_finish(env: napi_env, info: napi_callback_info) -> napi_value {
    js::guard(env, || {
        let [h] = js::args::<1>(env, info)?;
        js::external_arg::<ZstdStream>(env, h)?.finish()?;
        js::undefined(env)
    })
}

unsafe extern "C" fn gzip_member_stream_create(env: napi_env, info: napi_callback_info) -> napi_value {
    js::guard(env, || {
        let [a, skip, size] = js::args::<3>(env, info)?;
        let algo = DigestAlgo::parse(&js::string(env, a, "algorithm")?)?;
        js::new_external(env, GzipMemberStream::new(algo, js::size(env, skip, "skip")?, js::size(env, size, "size")?)?)
    })
}

unsafe extern "C" fn gzip_member_stream_push(env: napi_env, info: napi_callback_info) -> napi_value {
    js::guard(env, || {
        let [h, src, dst] = js::args::<3>(env, info)?;
        let filled = js::external_arg::<GzipMemberStream>(env, h)?.push(js::bytes(env, src, "input")?, js::bytes(env, dst, "output")?)?;
        js::new_number(env, filled as f64)
    })
}

unsafe extern "C" fn gzip_member_stream_finish(env: napi_env, info: napi_callback_info) -> napi_value {
    js::guard(env, || {
        let [h] = js::args::<1>(env, info)?;
        let digest = js::external_arg::<GzipMemberStream>(env, h)?.finish()?;
        js::new_buffer_copy(env, &digest)
    })
}

unsafe extern "C" fn fd_send(env: napi_env, info: napi_callback_info) -> napi_value {
    js::guard(env, || {
        let [p, f, d, t] = js::args::<4>(env, info)?;
        fdpass::send(&js::string(env, p, "path")?, js::int(env, f, "fd")?, js::bytes(env, d, "data")?, js::int(env, t, "timeoutMs")? as u32)?;
        js::undefined(env)
    })
}

unsafe extern "C" fn fd_receive(env: napi_env, info: napi_callback_info) -> napi_value {
    js::guard(env, || {
        let [p, t] = js::args::<2>(env, info)?;
        let (fd, data) = fdpass::receive(&js::string(env, p, "path")?, js::int(env, t, "timeoutMs")? as u32)?;
        let items = [js::new_number(env, fd as f64)?, js::new_buffer_owned(env, data)?];
        js::new_array(env, &items)
    })
}

unsafe extern "C" fn pidfd_getfd(env: napi_env, info: napi_callback_info) -> napi_value {
    js::guard(env, || {
        let [p, f] = js::args::<2>(env, info)?;
        let fd = pidfd::getfd(js::int(env, p, "pid")?, js::int(env, f, "fd")?)?;
        js::new_number(env, fd as f64)
    })
}

unsafe extern "C" fn pidfd_open(env: napi_env, info: napi_callback_info) -> napi_value {
    js::guard(env, || {
        let [p] = js::args::<1>(env, info)?;
        match pidfd::open(js::int(env, p, "pid")?)? {
            Some(fd) => js::new_number(env, fd as f64),
            None => js::new_number(env, -1.0),
        }
    })
}

unsafe extern "C" fn pidfd_send_signal(env: napi_env, info: napi_callback_info) -> napi_value {
    js::guard(env, || {
        let [f, s] = js::args::<2>(env, info)?;
        let sent = pidfd::send_signal(js::int(env, f, "pidfd")?, js::int(env, s, "signal")?)?;
        js::new_number(env, if sent { 1.0 } else { 0.0 })
    })
}

unsafe extern "C" fn flock_try_exclusive(env: napi_env, info: napi_callback_info) -> napi_value {
    js::guard(env, || {
        let [f] = js::args::<1>(env, info)?;
        let taken = flock::try_exclusive(js::int(env, f, "fd")?)?;
        js::new_number(env, if taken { 1.0 } else { 0.0 })
    })
}

unsafe extern "C" fn mount_read_only(env: napi_env, info: napi_callback_info) -> napi_value {
    js::guard(env, || {
        let [t, s, d, o] = js::args::<4>(env, info)?;
        mount::read_only(&js::string(env, t, "fstype")?, &js::string(env, s, "source")?, &js::string(env, d, "target")?, &js::string(env, o, "options")?)?;
        js::undefined(env)
    })
}

unsafe extern "C" fn mknod(env: napi_env, info: napi_callback_info) -> napi_value {
    js::guard(env, || {
        let [p, m, major, minor] = js::args::<4>(env, info)?;
        let mode = u32::try_from(js::int(env, m, "mode")?).map_err(|_| error::NativeError::Argument("mode must not be negative".into()))?;
        let dev = |v, name| u32::try_from(js::int(env, v, name)?).map_err(|_| error::NativeError::Argument(format!("{name} must not be negative")));
        fsnode::mknod(js::bytes(env, p, "path")?, mode, dev(major, "major")?, dev(minor, "minor")?)?;
        js::undefined(env)
    })
}

unsafe extern "C" fn lsetxattr(env: napi_env, info: napi_callback_info) -> napi_value {
    js::guard(env, || {
        let [p, n, v] = js::args::<3>(env, info)?;
        fsnode::lsetxattr(js::bytes(env, p, "path")?, js::bytes(env, n, "name")?, js::bytes(env, v, "value")?)?;
        js::undefined(env)
    })
}

unsafe extern "C" fn netlink_generic_transact(env: napi_env, info: napi_callback_info) -> napi_value {
    js::guard(env, || {
        let [m, t] = js::args::<2>(env, info)?;
        let replies = netlink::generic_transact(js::bytes(env, m, "message")?, js::int(env, t, "timeoutMs")?)?;
        js::new_buffer_copy(env, &replies)
    })
}

impl js::ExternalKind for Hasher {
    const TAG: u32 = 0x4841_5348; // "HASH"
    const NAME: &'static str = "hasher";
}

impl js::ExternalKind for GzipIndexer {
    const TAG: u32 = 0x475a_4958; // "GZIX"
    const NAME: &'static str = "gzip indexer";
}

impl js::ExternalKind for GzipMemberStream {
    const TAG: u32 = 0x475a_4d53; // "GZMS"
    const NAME: &'static str = "gzip member stream";
}

impl js::ExternalKind for ZstdStream {
    const TAG: u32 = 0x5a53_5444; // "ZSTD"
    const NAME: &'static str = "zstd stream";
}

/// Node calls this when `process.dlopen()` loads the addon.
#[no_mangle]
pub unsafe extern "C" fn napi_register_module_v1(env: napi_env, exports: napi_value) -> napi_value {
    let functions: [(&str, napi_callback); 36] = [
        ("compress", Some(compress)),
        ("decompress", Some(decompress)),
        ("decompressInto", Some(decompress_into)),
        ("digest", Some(digest)),
        ("hasherCreate", Some(hasher_create)),
        ("hasherUpdate", Some(hasher_update)),
        ("hasherClone", Some(hasher_clone)),
        ("hasherFinish", Some(hasher_finish)),
        ("compressBatch", Some(compress_batch)),
        ("decompressBatch", Some(decompress_batch)),
        ("digestBatch", Some(digest_batch)),
        ("memberDecodeInto", Some(member_decode_into)),
        ("memberDecodeBatch", Some(member_decode_batch)),
        ("gzipIndexCreate", Some(gzip_index_create)),
        ("gzipIndexPush", Some(gzip_index_push)),
        ("gzipIndexPull", Some(gzip_index_pull)),
        ("gzipIndexTake", Some(gzip_index_take)),
        ("gzipIndexFinish", Some(gzip_index_finish)),
        ("gzipExtractInto", Some(gzip_extract_into)),
        ("zstdStreamCreate", Some(zstd_stream_create)),
        ("zstdStreamPush", Some(zstd_stream_push)),
        ("zstdStreamPull", Some(zstd_stream_pull)),
        ("zstdStreamFinish", Some(zstd_stream_finish)),
        ("gzipMemberStreamCreate", Some(gzip_member_stream_create)),
        ("gzipMemberStreamPush", Some(gzip_member_stream_push)),
        ("gzipMemberStreamFinish", Some(gzip_member_stream_finish)),
        ("pidfdGetfd", Some(pidfd_getfd)),
        ("fdSend", Some(fd_send)),
        ("fdReceive", Some(fd_receive)),
        ("pidfdOpen", Some(pidfd_open)),
        ("pidfdSendSignal", Some(pidfd_send_signal)),
        ("flockTryExclusive", Some(flock_try_exclusive)),
        ("mountReadOnly", Some(mount_read_only)),
        ("netlinkGenericTransact", Some(netlink_generic_transact)),
        ("mknod", Some(mknod)),
        ("lsetxattr", Some(lsetxattr)),
    ];
    js::guard(env, || {
        for (name, f) in functions {
            js::export(env, exports, name, f)?;
        }
        let v = js::new_string(env, env!("CARGO_PKG_VERSION"))?;
        let name = std::ffi::CString::new("version").expect("no NUL");
        js::check!(napi_set_named_property(env, exports, name.as_ptr(), v), "napi_set_named_property");
        Ok(exports)
    })
}

#[no_mangle]
pub extern "C" fn node_api_module_get_api_version_v1() -> i32 {
    8
}
