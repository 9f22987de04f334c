//! pidfd_getfd(2): a copy of another process's descriptor. The snapshotter's daemon manager uses it
//! to take back the /dev/fuse descriptor of a daemon it adopted after its own restart, so that daemon
//! can still be failed over (its successor gets the same FUSE connection). Needs Linux 5.6 and
//! ptrace rights over the process (root).

use crate::error::{NativeError, Result};

pub fn getfd(pid: i32, fd: i32) -> Result<i32> {
    if pid <= 0 || fd < 0 {
        return Err(NativeError::Argument(format!("pidfdGetfd: bad pid {pid} or fd {fd}")));
    }
    // SAFETY: plain syscalls on integers; the returned descriptors are owned here or by the caller.
    unsafe {
        let pidfd = libc::syscall(libc::SYS_pidfd_open, pid, 0) as i32;
        if pidfd < 0 {
            return Err(NativeError::Internal(format!("pidfd_open({pid}): {}", std::io::Error::last_os_error())));
        }
        // the new descriptor is close-on-exec: a child gets it only when passed explicitly
        let copy = libc::syscall(libc::SYS_pidfd_getfd, pidfd, fd, 0) as i32;
        let err = std::io::Error::last_os_error();
        libc::close(pidfd);
        if copy < 0 {
            return Err(NativeError::Internal(format!("pidfd_getfd({pid}, {fd}): {err}")));
        }
        Ok(copy)
    }
}
