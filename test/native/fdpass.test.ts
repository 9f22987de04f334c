// A descriptor and a message through a supervisor's unix socket (SCM_RIGHTS), as nydusd hands its
// /dev/fuse descriptor over: the supervisor here is Python's socket module (recv_fds / send_fds), a
// peer written by others, which keeps what one connection sends and gives it to the next.
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fdReceiveFrom, fdSendTo } from '../../src/native/index.js';

const SUPERVISOR = `
import socket, os, sys
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(2)
c, _ = s.accept(); data = b''; fds = []
while True:
    m, f, _, _ = socket.recv_fds(c, 65536, 4)
    fds += f
    if not m: break
    data += m
c.close()
c, _ = s.accept(); socket.send_fds(c, [data], fds); c.close()
`;

describe('descriptor passing', () => {
  it('sends a descriptor with a message to a supervisor and takes them back', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nydusify-fdpass-'));
    const sock = join(dir, 'supervisor.sock');
    const py = spawn('python3', ['-c', SUPERVISOR, sock], { stdio: 'inherit' });
    for (let i = 0; i < 100 && !existsSync(sock); i++) await new Promise((r) => setTimeout(r, 20));
    writeFileSync(join(dir, 'file'), 'the same open file');
    const fd = openSync(join(dir, 'file'), 'r');
    const state = Buffer.from(JSON.stringify({ mounts: ['/'], big: 'x'.repeat(200_000) }));
    fdSendTo(sock, fd, state);
    closeSync(fd);
    const back = fdReceiveFrom(sock);
    expect(back.data.equals(state)).toBe(true);
    const b = Buffer.alloc(18);
    readSync(back.fd, b, 0, 18, 0);
    expect(b.toString()).toBe('the same open file');
    closeSync(back.fd);
    await new Promise((r) => py.once('exit', r));
  });

  it('says what is wrong: nobody listening, no descriptor', () => {
    expect(() => fdReceiveFrom('/nonexistent/supervisor.sock', 200)).toThrow(/connect \/nonexistent\/supervisor\.sock/);
    expect(() => fdSendTo('/nonexistent/supervisor.sock', -1, Buffer.from('x'))).toThrow(/a descriptor and a non-empty message/);
  });
});
