//! mount(2) of a read-only filesystem whose source is a regular file. The mount(8) command would put
//! a loop device between a file and the filesystem; EROFS reads a file itself (file-backed mounts,
//! Linux >= 6.12), so block mode calls the syscall directly: no loop device, one page cache.

use crate::error::{NativeError, Result};
use std::ffi::CString;

fn c_string(s: &str, what: &str) -> Result<CString> {
    CString::new(s).map_err(|_| NativeError::Argument(format!("mountReadOnly: {what} contains a NUL byte")))
}

/// Mounts `source` (a file or device) at `target` as `fstype`, read-only, with `data` as its options.
pub fn read_only(fstype: &str, source: &str, target: &str, data: &str) -> Result<()> {
    let (t, s, d, o) = (c_string(fstype, "fstype")?, c_string(source, "source")?, c_string(target, "target")?, c_string(data, "options")?);
    // SAFETY: every pointer is a live NUL-terminated string for the duration of the call.
    let rc = unsafe { libc::mount(s.as_ptr(), d.as_ptr(), t.as_ptr(), libc::MS_RDONLY, o.as_ptr().cast()) };
    if rc == 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    Err(NativeError::Internal(format!("mount -t {fstype} {source} {target}: {err}")))
}
