#!/usr/bin/env python3
"""Prints a JSON manifest of a directory tree: every entry's type, mode, owner, mtime, size,
content digest, symlink target, device numbers, xattrs and hardlink group. Tests compare the
manifests of two trees (e.g. GNU tar's extraction and our kernel-mounted image).
Usage: tree-manifest.py ROOT [--no-xattrs] [--skip-root-attrs]"""
import hashlib, json, os, stat, sys

def xattrs(path):
    out = {}
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return out
    for n in sorted(names):
        try:
            out[n] = os.getxattr(path, n, follow_symlinks=False).hex()
        except OSError:
            pass
    return out

def digest(path):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                return h.hexdigest()
            h.update(b)

def main():
    root = os.fsencode(sys.argv[1])
    with_xattrs = '--no-xattrs' not in sys.argv
    entries, groups = {}, {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in [b''] + sorted(dirnames + filenames) if dirpath == root else sorted(dirnames + filenames):
            full = os.path.join(dirpath, name) if name else dirpath
            rel = os.path.relpath(full, root).decode('utf-8', 'surrogateescape')
            st = os.lstat(full)
            kind = {stat.S_IFREG: 'file', stat.S_IFDIR: 'dir', stat.S_IFLNK: 'symlink', stat.S_IFCHR: 'char',
                    stat.S_IFBLK: 'block', stat.S_IFIFO: 'fifo', stat.S_IFSOCK: 'socket'}[stat.S_IFMT(st.st_mode)]
            e = {'type': kind, 'mode': oct(stat.S_IMODE(st.st_mode)), 'uid': st.st_uid, 'gid': st.st_gid,
                 'mtime': int(st.st_mtime)}
            if kind == 'file':
                e['size'] = st.st_size
                e['sha256'] = digest(full)
            elif kind == 'symlink':
                e['target'] = os.readlink(full).decode('utf-8', 'surrogateescape')
            elif kind in ('char', 'block'):
                e['rdev'] = [os.major(st.st_rdev), os.minor(st.st_rdev)]
            if with_xattrs:
                x = xattrs(full)
                if x:
                    e['xattrs'] = x
            if kind != 'dir' and st.st_nlink > 1:
                groups.setdefault((st.st_dev, st.st_ino), []).append(rel)
            entries[rel] = e
    for paths in groups.values():
        for p in paths:
            entries[p]['links'] = sorted(paths)
    json.dump(entries, sys.stdout, indent=0, sort_keys=True)

main()
