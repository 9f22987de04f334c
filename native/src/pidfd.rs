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

/// pidfd_open(2): a descriptor that names process `pid` for as long as it is held, even after the
/// process dies and its number is given to another (a signal through it then goes nowhere).
pub fn open(pid: i32) -> Result<Option<i32>> {
    if pid <= 0 {
        return Err(NativeError::Argument(format!("pidfdOpen: bad pid {pid}")));
    }
    // SAFETY: a plain syscall on an integer; the descriptor is the caller's to close.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as i32;
    if fd >= 0 {
        return Ok(Some(fd));
    }
    let err = std::io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::ESRCH) {
        return Ok(None);
    }
    Err(NativeError::Internal(format!("pidfd_open({pid}): {err}")))
}

/// pidfd_send_signal(2): true when sent, false when the process is gone.
pub fn send_signal(pidfd: i32, signal: i32) -> Result<bool> {
    if pidfd < 0 || signal <= 0 {
        return Err(NativeError::Argument(format!("pidfdSendSignal: bad pidfd {pidfd} or signal {signal}")));
    }
    // SAFETY: a plain syscall on integers; a null siginfo is what kill(2) would send.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_send_signal, pidfd, signal, std::ptr::null::<libc::siginfo_t>(), 0) };
    if r == 0 {
        return Ok(true);
    }
    let err = std::io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::ESRCH) {
        return Ok(false);
    }
    Err(NativeError::Internal(format!("pidfd_send_signal({pidfd}, {signal}): {err}")))
}
