//! Batches of chunk work run on the libuv thread pool, answered with a Promise.
//! Inputs stay referenced (not copied) until the work completes; outputs are Vecs handed to JS
//! as Buffers without a copy.

use crate::codec::{self, Codec};
use crate::digest::{self, DigestAlgo};
use crate::error::{arg, NativeError, Result};
use crate::member;
use crate::js::{self, check};
use crate::napi::*;
use std::os::raw::c_void;
use std::ptr;

#[derive(Clone, Copy)]
pub enum BatchOp {
    Compress(Codec, i32),
    Decompress(Codec, usize),
    Digest(DigestAlgo),
    /// The first member of each input: `skips[i]` bytes dropped, then exactly `sizes[i]` bytes.
    Member(Codec),
}

struct Item {
    src: *const u8,
    len: usize,
    size: Option<usize>,
    skip: usize,
}

struct Job {
    op: BatchOp,
    items: Vec<Item>,
    refs: Vec<napi_ref>,
    outputs: Vec<Vec<u8>>,
    error: Option<NativeError>,
    deferred: napi_deferred,
    work: napi_async_work,
}

fn run_item(op: BatchOp, src: &[u8], size: Option<usize>, skip: usize) -> Result<Vec<u8>> {
    match op {
        BatchOp::Compress(c, level) => codec::compress(c, src, level),
        BatchOp::Decompress(c, max) => codec::decompress(c, src, size, max),
        BatchOp::Digest(a) => Ok(digest::digest(a, src).to_vec()),
        BatchOp::Member(c) => {
            let Some(size) = size else { return arg("a member needs its size") };
            let mut out = Vec::new();
            out.try_reserve_exact(size).map_err(|_| NativeError::Size(format!("cannot allocate {size} bytes for the output")))?;
            out.resize(size, 0);
            member::decode_first_member(c, src, skip, &mut out)?;
            Ok(out)
        }
    }
}

unsafe extern "C" fn execute(_env: napi_env, data: *mut c_void) {
    // a thread-pool thread: no napi_* calls here
    let job = &mut *(data as *mut Job);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> Result<()> {
        for (i, it) in job.items.iter().enumerate() {
            let src = if it.len == 0 { &[][..] } else { std::slice::from_raw_parts(it.src, it.len) };
            let out = run_item(job.op, src, it.size, it.skip).map_err(|e| e.context(&format!("item {i}")))?;
            job.outputs.push(out);
        }
        Ok(())
    }));
    job.error = match r {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e),
        Err(_) => Some(NativeError::Internal("panic in native batch".into())),
    };
}

unsafe fn settle(env: napi_env, job: &mut Job) -> Result<napi_value> {
    if let Some(e) = job.error.take() {
        return Err(e);
    }
    let mut values = Vec::with_capacity(job.outputs.len());
    for out in job.outputs.drain(..) {
        values.push(js::new_buffer_owned(env, out)?);
    }
    js::new_array(env, &values)
}

unsafe extern "C" fn complete(env: napi_env, _status: napi_status, data: *mut c_void) {
    let mut job = Box::from_raw(data as *mut Job);
    match settle(env, &mut job) {
        Ok(arr) => napi_resolve_deferred(env, job.deferred, arr),
        Err(e) => napi_reject_deferred(env, job.deferred, js::error_value(env, &e)),
    };
    release(env, &job);
}

unsafe fn release(env: napi_env, job: &Job) {
    for r in &job.refs {
        napi_delete_reference(env, *r);
    }
    if !job.work.is_null() {
        napi_delete_async_work(env, job.work);
    }
}

/// Queues `op` over `srcs` (with per-item `sizes` for decompression, and `skips` for members)
/// and returns the Promise.
pub unsafe fn queue(env: napi_env, op: BatchOp, srcs: napi_value, sizes: Option<napi_value>, skips: Option<napi_value>) -> Result<napi_value> {
    let bufs = js::array(env, srcs, "inputs")?;
    let sizes = per_item(env, sizes, "sizes", bufs.len())?;
    let skips = per_item(env, skips, "skips", bufs.len())?;
    let mut job = Box::new(Job {
        op, items: Vec::with_capacity(bufs.len()), refs: Vec::with_capacity(bufs.len()),
        outputs: Vec::with_capacity(bufs.len()), error: None, deferred: ptr::null_mut(), work: ptr::null_mut(),
    });
    let r = fill(env, &mut job, &bufs, &sizes, &skips);
    if let Err(e) = r {
        release(env, &job);
        return Err(e);
    }
    let mut promise = ptr::null_mut();
    if let Err(e) = (|| -> Result<()> {
        check!(napi_create_promise(env, &mut job.deferred, &mut promise), "napi_create_promise");
        let name = js::new_string(env, "nydusifyNativeBatch")?;
        check!(napi_create_async_work(env, ptr::null_mut(), name, Some(execute), Some(complete),
            (&mut *job as *mut Job).cast(), &mut job.work), "napi_create_async_work");
        Ok(())
    })() {
        release(env, &job);
        return Err(e);
    }
    let work = job.work;
    let raw = Box::into_raw(job);
    if napi_queue_async_work(env, work) != NAPI_OK {
        let job = Box::from_raw(raw);
        release(env, &job);
        return Err(NativeError::Internal("napi_queue_async_work failed".into()));
    }
    Ok(promise)
}

/// An optional array with one entry per input (empty when absent).
unsafe fn per_item(env: napi_env, v: Option<napi_value>, name: &str, inputs: usize) -> Result<Vec<napi_value>> {
    let items = match v {
        Some(v) => js::array(env, v, name)?,
        None => Vec::new(),
    };
    if !items.is_empty() && items.len() != inputs {
        return arg(format!("{name} has {} entries for {inputs} inputs", items.len()));
    }
    Ok(items)
}

unsafe fn fill(env: napi_env, job: &mut Job, bufs: &[napi_value], sizes: &[napi_value], skips: &[napi_value]) -> Result<()> {
    for (i, b) in bufs.iter().enumerate() {
        let src = js::bytes(env, *b, &format!("inputs[{i}]"))?;
        let size = match sizes.get(i) {
            Some(s) => js::opt_size(env, *s, &format!("sizes[{i}]"))?,
            None => None,
        };
        let skip = match skips.get(i) {
            Some(s) => js::size(env, *s, &format!("skips[{i}]"))?,
            None => 0,
        };
        let mut r = ptr::null_mut();
        check!(napi_create_reference(env, *b, 1, &mut r), "napi_create_reference");
        job.refs.push(r);
        job.items.push(Item { src: src.as_ptr(), len: src.len(), size, skip });
    }
    Ok(())
}
