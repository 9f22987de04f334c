//! flock(2): an advisory lock the kernel releases when its holder's descriptor closes, which it
//! does when the holder dies, whatever happens to its pid afterwards. The daemon managers lock a
//! daemon's record with it.

use crate::error::{NativeError, Result};

/// Takes an exclusive lock on `fd` without waiting: true when taken, false when another open file holds it.
pub fn try_exclusive(fd: i32) -> Result<bool> {
    if fd < 0 {
        return Err(NativeError::Argument(format!("flockTryExclusive: bad fd {fd}")));
    }
    loop {
        // SAFETY: a plain syscall on an integer descriptor.
        if unsafe { libc::flock(fd, libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok(true);
        }
        let err = std::io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EWOULDBLOCK) => return Ok(false),
            Some(libc::EINTR) => continue,
            _ => return Err(NativeError::Internal(format!("flock({fd}): {err}"))),
        }
    }
}
