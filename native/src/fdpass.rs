//! A descriptor and a message over a unix socket (SCM_RIGHTS), as nydusd hands its /dev/fuse
//! descriptor to a supervisor (nydus-snapshotter's) and a successor takes it back: connect to the
//! supervisor's socket, then send everything (or read until the other side closes). Blocking, with a
//! timeout on each step: the supervisor answers at once or not at all.

use crate::error::{NativeError, Result};
use std::ffi::CString;
use std::time::Duration;

/// Most message bytes taken back: a daemon's state is a few KiB.
const MAX_MESSAGE: usize = 4 << 20;

struct Fd(i32);

impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: closing a descriptor this struct owns.
        unsafe { libc::close(self.0) };
    }
}

fn last_error(what: &str) -> NativeError {
    NativeError::Internal(format!("{what}: {}", std::io::Error::last_os_error()))
}

/// A unix stream socket connected to `path`, with send and receive timeouts.
fn connect(path: &str, timeout: Duration) -> Result<Fd> {
    let c_path = CString::new(path).map_err(|_| NativeError::Argument("socket path holds a NUL".into()))?;
    let bytes = c_path.as_bytes();
    // SAFETY: a zeroed sockaddr_un filled within its bounds; plain syscalls on a descriptor we own.
    unsafe {
        let mut addr: libc::sockaddr_un = std::mem::zeroed();
        if bytes.len() >= addr.sun_path.len() {
            return Err(NativeError::Argument(format!("socket path longer than {} bytes", addr.sun_path.len() - 1)));
        }
        addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
        for (i, b) in bytes.iter().enumerate() {
            addr.sun_path[i] = *b as libc::c_char;
        }
        let fd = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(last_error("socket"));
        }
        let sock = Fd(fd);
        let tv = libc::timeval { tv_sec: timeout.as_secs() as libc::time_t, tv_usec: timeout.subsec_micros() as libc::suseconds_t };
        for opt in [libc::SO_SNDTIMEO, libc::SO_RCVTIMEO] {
            if libc::setsockopt(fd, libc::SOL_SOCKET, opt, &tv as *const _ as *const libc::c_void, std::mem::size_of::<libc::timeval>() as libc::socklen_t) < 0 {
                return Err(last_error("setsockopt"));
            }
        }
        if libc::connect(fd, &addr as *const _ as *const libc::sockaddr, std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t) < 0 {
            return Err(last_error(&format!("connect {path}")));
        }
        Ok(sock)
    }
}

/// Sends `data` and descriptor `fd` (with the first bytes) to the socket at `path`, then closes.
pub fn send(path: &str, fd: i32, data: &[u8], timeout_ms: u32) -> Result<()> {
    if fd < 0 || data.is_empty() {
        return Err(NativeError::Argument("sendFd: a descriptor and a non-empty message".into()));
    }
    let sock = connect(path, Duration::from_millis(timeout_ms as u64))?;
    let mut sent = 0usize;
    // SAFETY: the control buffer is sized by CMSG_SPACE for one int, filled through CMSG_* within it.
    unsafe {
        let space = libc::CMSG_SPACE(std::mem::size_of::<i32>() as u32) as usize;
        let mut control = vec![0u8; space];
        while sent < data.len() {
            let mut iov = libc::iovec { iov_base: data[sent..].as_ptr() as *mut libc::c_void, iov_len: data.len() - sent };
            let mut msg: libc::msghdr = std::mem::zeroed();
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            if sent == 0 {
                msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
                msg.msg_controllen = space as _;
                let cmsg = libc::CMSG_FIRSTHDR(&msg);
                (*cmsg).cmsg_level = libc::SOL_SOCKET;
                (*cmsg).cmsg_type = libc::SCM_RIGHTS;
                (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<i32>() as u32) as _;
                std::ptr::write_unaligned(libc::CMSG_DATA(cmsg) as *mut i32, fd);
            }
            let n = libc::sendmsg(sock.0, &msg, libc::MSG_NOSIGNAL);
            if n < 0 {
                return Err(last_error(&format!("sendmsg to {path}")));
            }
            sent += n as usize;
        }
    }
    Ok(())
}

/// Reads the message and the one descriptor the socket at `path` sends, until it closes.
pub fn receive(path: &str, timeout_ms: u32) -> Result<(i32, Vec<u8>)> {
    let sock = connect(path, Duration::from_millis(timeout_ms as u64))?;
    let mut data = Vec::new();
    let mut received: Vec<Fd> = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    // SAFETY: recvmsg into buffers we own; control messages walked with CMSG_* within the buffer.
    unsafe {
        let space = libc::CMSG_SPACE((std::mem::size_of::<i32>() * 16) as u32) as usize;
        let mut control = vec![0u8; space];
        loop {
            let mut iov = libc::iovec { iov_base: buf.as_mut_ptr() as *mut libc::c_void, iov_len: buf.len() };
            let mut msg: libc::msghdr = std::mem::zeroed();
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
            msg.msg_controllen = space as _;
            let n = libc::recvmsg(sock.0, &mut msg, libc::MSG_CMSG_CLOEXEC);
            if n < 0 {
                return Err(last_error(&format!("recvmsg from {path}")));
            }
            let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
            while !cmsg.is_null() {
                if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                    let count = ((*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize) / std::mem::size_of::<i32>();
                    for i in 0..count {
                        received.push(Fd(std::ptr::read_unaligned((libc::CMSG_DATA(cmsg) as *const i32).add(i))));
                    }
                }
                cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
            }
            if msg.msg_flags & libc::MSG_CTRUNC != 0 {
                return Err(NativeError::Internal(format!("{path} sent more descriptors than one")));
            }
            if n == 0 {
                break;
            }
            data.extend_from_slice(&buf[..n as usize]);
            if data.len() > MAX_MESSAGE {
                return Err(NativeError::Internal(format!("{path} sent more than {MAX_MESSAGE} bytes")));
            }
        }
    }
    if received.len() != 1 {
        return Err(NativeError::Internal(format!("{path} sent {} descriptors, expected one", received.len())));
    }
    let fd = received.pop().unwrap();
    let raw = fd.0;
    std::mem::forget(fd);
    Ok((raw, data))
}
