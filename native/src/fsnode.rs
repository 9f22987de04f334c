//! The two file system calls a layer applier needs that Node lacks: mknod(2), for device nodes,
//! FIFOs and overlayfs whiteouts (character devices 0/0), and lsetxattr(2), for a file's extended
//! attributes and overlayfs's opaque-directory mark. Paths are bytes: a layer's names need not be UTF-8.

use crate::error::{NativeError, Result};
use std::ffi::CString;

fn c_bytes(b: &[u8], what: &str) -> Result<CString> {
    CString::new(b).map_err(|_| NativeError::Argument(format!("{what} contains a NUL byte")))
}

fn os_error(call: &str, path: &[u8]) -> NativeError {
    let err = std::io::Error::last_os_error();
    NativeError::Internal(format!("{call} {}: {err}", String::from_utf8_lossy(path)))
}

/// Makes node `path` of type and permissions `mode` (S_IFCHR, S_IFBLK or S_IFIFO with its bits), device `major:minor`.
pub fn mknod(path: &[u8], mode: u32, major: u32, minor: u32) -> Result<()> {
    let kind = mode & libc::S_IFMT;
    if kind != libc::S_IFCHR && kind != libc::S_IFBLK && kind != libc::S_IFIFO {
        return Err(NativeError::Argument(format!("mknod: mode {mode:o} is not a character or block device or a FIFO")));
    }
    let p = c_bytes(path, "mknod: path")?;
    // SAFETY: `p` is a live NUL-terminated string for the call.
    if unsafe { libc::mknod(p.as_ptr(), mode, libc::makedev(major, minor)) } == 0 {
        return Ok(());
    }
    Err(os_error("mknod", path))
}

/// Sets extended attribute `name` of `path` itself (a symlink's own, not its target's) to `value`.
pub fn lsetxattr(path: &[u8], name: &[u8], value: &[u8]) -> Result<()> {
    let (p, n) = (c_bytes(path, "lsetxattr: path")?, c_bytes(name, "lsetxattr: name")?);
    // SAFETY: both strings live for the call; `value` is a valid slice of its length.
    if unsafe { libc::lsetxattr(p.as_ptr(), n.as_ptr(), value.as_ptr().cast(), value.len(), 0) } == 0 {
        return Ok(());
    }
    Err(os_error("lsetxattr", path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{FileTypeExt, MetadataExt};

    #[test]
    fn makes_fifos_and_refuses_other_kinds() {
        let dir = std::env::temp_dir().join(format!("fsnode-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("fifo");
        let _ = std::fs::remove_file(&fifo);
        mknod(fifo.as_os_str().as_encoded_bytes(), libc::S_IFIFO | 0o640, 0, 0).unwrap();
        let m = std::fs::symlink_metadata(&fifo).unwrap();
        assert!(m.file_type().is_fifo());
        assert_eq!(m.mode() & 0o777, 0o640 & !current_umask());
        assert!(matches!(mknod(dir.join("x").as_os_str().as_encoded_bytes(), libc::S_IFREG | 0o644, 0, 0), Err(NativeError::Argument(_))));
        assert!(matches!(mknod(fifo.as_os_str().as_encoded_bytes(), libc::S_IFIFO | 0o644, 0, 0), Err(NativeError::Internal(_))));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn current_umask() -> u32 {
        // SAFETY: umask only swaps the process's mask; it is put back at once.
        unsafe {
            let m = libc::umask(0o022);
            libc::umask(m);
            m
        }
    }

    #[test]
    fn nul_bytes_are_argument_errors() {
        assert!(matches!(lsetxattr(b"a\0b", b"user.x", b""), Err(NativeError::Argument(_))));
        assert!(matches!(mknod(b"a\0b", libc::S_IFIFO, 0, 0), Err(NativeError::Argument(_))));
    }
}
