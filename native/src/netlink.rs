//! One generic-netlink round trip: the nbd-client bindings (src/block/nbd/kernel-attach.ts) talk to
//! the kernel's nbd driver this way. Generic on purpose: the caller builds the request and parses
//! the replies (src/block/nbd/netlink.ts); this only moves bytes over a fresh AF_NETLINK socket.
//! The kernel runs a generic-netlink command inside our sendto(2), so descriptors the request
//! names (NBD_SOCK_FD) are looked up in this process's table: no SCM_RIGHTS.

use crate::error::{NativeError, Result};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const NLMSG_HDRLEN: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const SOL_NETLINK: i32 = 270;
const NETLINK_CAP_ACK: i32 = 10;
const NETLINK_EXT_ACK: i32 = 11;
/// One datagram: the kernel's replies to a request are at most a page or two (NLMSG_GOODSIZE).
const DATAGRAM: usize = 64 << 10;
/// A reply stream longer than this is not one the nbd or ctrl families send.
const MAX_REPLY: usize = 1 << 20;

fn os_error(what: &str) -> NativeError {
    NativeError::Internal(format!("netlink {what}: {}", std::io::Error::last_os_error()))
}

/// Sends `message` (one complete nlmsghdr-framed request) to the kernel and returns every reply
/// datagram, concatenated, up to and including the first NLMSG_ERROR (an ack is an error 0) or
/// NLMSG_DONE. The caller sets NLM_F_ACK so that one always comes.
pub fn generic_transact(message: &[u8], timeout_ms: i32) -> Result<Vec<u8>> {
    if message.len() < NLMSG_HDRLEN || u32::from_ne_bytes(message[..4].try_into().unwrap()) as usize != message.len() {
        return Err(NativeError::Argument("netlinkGenericTransact: message must be one netlink message (nlmsg_len = its length)".into()));
    }
    if timeout_ms <= 0 {
        return Err(NativeError::Argument(format!("netlinkGenericTransact: bad timeout {timeout_ms}")));
    }
    let socket = open(timeout_ms)?;
    send(&socket, message)?;
    receive(&socket, timeout_ms)
}

fn open(timeout_ms: i32) -> Result<OwnedFd> {
    // SAFETY: plain syscalls on integers and on local structs of the sizes passed.
    unsafe {
        let fd = libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::NETLINK_GENERIC);
        if fd < 0 {
            return Err(os_error("socket"));
        }
        let socket = OwnedFd::from_raw_fd(fd);
        let on: libc::c_int = 1;
        let int_len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // an error reply carries the kernel's reason as text (extended ack) and not our whole request
        // back; both are optional (Linux 4.12, 4.3), so a refusal only costs the text
        libc::setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, (&on as *const libc::c_int).cast(), int_len);
        libc::setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, (&on as *const libc::c_int).cast(), int_len);
        let tv = libc::timeval { tv_sec: (timeout_ms / 1000) as libc::time_t, tv_usec: ((timeout_ms % 1000) * 1000) as libc::suseconds_t };
        let tv_len = std::mem::size_of::<libc::timeval>() as libc::socklen_t;
        if libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVTIMEO, (&tv as *const libc::timeval).cast(), tv_len) != 0 {
            return Err(os_error("setsockopt(SO_RCVTIMEO)"));
        }
        Ok(socket)
    }
}

fn send(socket: &OwnedFd, message: &[u8]) -> Result<()> {
    // SAFETY: sockaddr_nl is plain data (zeroed = the kernel, no groups); the buffer outlives the call.
    unsafe {
        let mut kernel: libc::sockaddr_nl = std::mem::zeroed();
        kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        let addr_len = std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t;
        loop {
            let n = libc::sendto(socket.as_raw_fd(), message.as_ptr().cast(), message.len(), 0,
                (&kernel as *const libc::sockaddr_nl).cast(), addr_len);
            if n == message.len() as isize {
                return Ok(());
            }
            if n >= 0 {
                return Err(NativeError::Internal(format!("netlink sendto: sent {n} of {} bytes", message.len())));
            }
            if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                return Err(os_error("sendto"));
            }
        }
    }
}

fn receive(socket: &OwnedFd, timeout_ms: i32) -> Result<Vec<u8>> {
    let mut replies = Vec::new();
    let mut datagram = vec![0u8; DATAGRAM];
    loop {
        // SAFETY: recv into a buffer of the length given; MSG_TRUNC makes it return the real length.
        let n = unsafe { libc::recv(socket.as_raw_fd(), datagram.as_mut_ptr().cast(), datagram.len(), libc::MSG_TRUNC) };
        if n < 0 {
            match std::io::Error::last_os_error().raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EAGAIN) => return Err(NativeError::Internal(format!("netlink: no reply from the kernel within {timeout_ms} ms"))),
                _ => return Err(os_error("recv")),
            }
        }
        let n = n as usize;
        if n > datagram.len() || replies.len() + n > MAX_REPLY {
            return Err(NativeError::Internal(format!("netlink: reply larger than {} bytes", if n > datagram.len() { DATAGRAM } else { MAX_REPLY })));
        }
        replies.extend_from_slice(&datagram[..n]);
        if ends_exchange(&datagram[..n]) {
            return Ok(replies);
        }
    }
}

/// Whether a datagram holds the message that ends an exchange. A malformed header ends it too:
/// the caller's parser reports it, and waiting for more would only wait for the timeout.
fn ends_exchange(datagram: &[u8]) -> bool {
    let mut off = 0;
    while off + NLMSG_HDRLEN <= datagram.len() {
        let len = u32::from_ne_bytes(datagram[off..off + 4].try_into().unwrap()) as usize;
        let kind = u16::from_ne_bytes(datagram[off + 4..off + 6].try_into().unwrap());
        if kind == NLMSG_ERROR || kind == NLMSG_DONE || len < NLMSG_HDRLEN || len > datagram.len() - off {
            return true;
        }
        off = (off + ((len + 3) & !3)).min(datagram.len());
    }
    off != datagram.len()
}
