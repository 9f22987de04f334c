#!/bin/sh
# Runs inside a container of debian-ml (make-images.sh puts it at /etc/e2e/expect.sh): what layers 1
# and 2 (and 3) must add up to. Prints one line per check and ALL OK, or exits 1.
failed=0
check() {
  if eval "$1"; then echo "ok   $2"; else echo "FAIL $2"; failed=1; fi
}
check '[ ! -e /usr/share/doc ]' 'directory whiteout: /usr/share/doc is gone'
check '[ "$(ls -A /usr/share/locale)" = README.e2e ]' 'opaque directory: /usr/share/locale holds only README.e2e'
check '[ ! -e /usr/bin/rgrep ]' 'file whiteout: /usr/bin/rgrep is gone'
check '[ ! -e /usr/share/man/man1/ls.1.gz ]' 'file whiteout: ls.1.gz is gone'
check '[ -e /usr/share/man/man1/cat.1.gz ]' 'its sibling cat.1.gz stays'
check '[ -f /etc/os-release ] && [ ! -L /etc/os-release ]' '/etc/os-release: symlink became a file'
check '[ -f /srv ]' '/srv: directory became a file'
check '[ -f /etc/motd/inside.txt ]' '/etc/motd: file became a directory'
check '[ "$(stat -c %i /etc/e2e/hello.txt)" = "$(stat -c %i /etc/e2e/hardlink.txt)" ]' 'hardlink shares the inode'
check '[ "$(readlink /etc/e2e/symlink-rel)" = hello.txt ]' 'relative symlink'
check '[ "$(readlink /etc/e2e/symlink-abs)" = /etc/e2e/hello.txt ]' 'absolute symlink'
check '[ -L /etc/e2e/dangling ]' 'dangling symlink'
check '[ -f /etc/e2e/empty ] && [ ! -s /etc/e2e/empty ]' 'empty file'
check '[ "$(stat -c %a /etc/e2e/suid.sh)" = 4755 ]' 'setuid bit'
check '[ "$(stat -c %u:%g:%a /etc/e2e/owned-1000.txt)" = 1000:1000:640 ]' 'owner 1000:1000, mode 640'
check '[ -p /etc/e2e/fifo ]' 'fifo'
check '[ -c /etc/e2e/null-dev ]' 'character device'
check '[ "$(stat -c %Y /etc/e2e/old-mtime.txt)" = 631249445 ]' 'mtime 1990-01-02T03:04:05Z'
check '[ "$(stat -c %a /etc/e2e/private)" = 700 ]' 'mode 0700 directory'
check '[ -f "/etc/e2e/héllo-世界.txt" ]' 'UTF-8 file name'
check '[ "$(ls /etc/e2e | awk "length > 149" | wc -l)" = 1 ]' '150-character file name'
check '(cd /etc/e2e && sha256sum -c SHA256SUMS >/dev/null)' 'file contents match SHA256SUMS'
if command -v getfattr >/dev/null; then
  check '[ "$(getfattr --only-values -n user.e2e /etc/e2e/xattr.txt)" = layer2 ]' 'user xattr'
fi
if [ -x /usr/local/bin/node ]; then
  check '[ "$(node -e "console.log(6 * 7)")" = 42 ]' 'layer 3: node runs'
fi
if [ $failed = 0 ]; then echo "ALL OK"; else echo "SOME CHECKS FAILED"; exit 1; fi
