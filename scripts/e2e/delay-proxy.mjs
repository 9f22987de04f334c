// A TCP proxy that adds latency, standing in for `tc netem delay` (not built into this kernel).
// Node stdlib only.
//   node delay-proxy.mjs --listen 10.203.0.2:5000 --target 127.0.0.1:5000 --delay-ms 10
//        [--up-delay-ms N] [--down-delay-ms N] [--rate-mbit N] [--hwm BYTES]
// Each chunk read from one side is written to the other --delay-ms later, in both directions, so a
// request and its response gain about twice the delay. The connection handshake itself is not
// delayed. Memory stays bounded: a side stops being read while more than --hwm bytes wait or the
// other side's socket is full. --rate-mbit caps each direction over all connections; without it the
// kernel's shaping (tc tbf on the veth) decides.
import net from 'node:net';

function option(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}
const hostPort = (s) => {
  const colon = s.lastIndexOf(':');
  return { host: s.slice(0, colon), port: Number(s.slice(colon + 1)) };
};

const listen = hostPort(option('listen', '127.0.0.1:5100'));
const target = hostPort(option('target', '127.0.0.1:5000'));
const delay = Number(option('delay-ms', '10'));
const upDelay = Number(option('up-delay-ms', String(delay)));
const downDelay = Number(option('down-delay-ms', String(delay)));
const highWater = Number(option('hwm', String(4 << 20)));
const rateMbit = Number(option('rate-mbit', '0'));

/** One direction's link when rate-limited: when it is free again, in ms since the epoch. */
function link() {
  return rateMbit > 0 ? { bytesPerMs: (rateMbit * 1e6) / 8 / 1000, freeAt: 0 } : null;
}
const upLink = link();
const downLink = link();

/** How long a chunk waits before it is written: the delay, plus its turn on a rate-limited link. */
function holdFor(bytes, ms, shared) {
  if (!shared) return ms;
  const now = Date.now();
  shared.freeAt = Math.max(now, shared.freeAt) + bytes / shared.bytesPerMs;
  return ms + (shared.freeAt - now);
}

function forward(from, to, ms, shared) {
  let waiting = 0;
  let blocked = false;
  let ended = false;
  const resumeIfRoom = () => {
    if (!ended && !blocked && waiting <= highWater && from.isPaused()) from.resume();
  };
  to.on('drain', () => {
    blocked = false;
    resumeIfRoom();
  });
  from.on('data', (chunk) => {
    waiting += chunk.length;
    if (waiting > highWater) from.pause();
    setTimeout(() => {
      waiting -= chunk.length;
      if (to.destroyed) return;
      if (!to.write(chunk)) {
        blocked = true;
        from.pause();
      }
      resumeIfRoom();
    }, holdFor(chunk.length, ms, shared));
  });
  // the end follows the last chunk, which was queued at most `ms` (plus its link time) ago
  from.on('end', () => {
    ended = true;
    setTimeout(() => to.end(), holdFor(0, ms, shared) + 1);
  });
}

const server = net.createServer((client) => {
  const upstream = net.connect(target.port, target.host);
  client.setNoDelay(true);
  upstream.setNoDelay(true);
  forward(client, upstream, upDelay, upLink);
  forward(upstream, client, downDelay, downLink);
  const closeBoth = () => {
    client.destroy();
    upstream.destroy();
  };
  client.on('error', closeBoth);
  upstream.on('error', closeBoth);
  // when one side closes, data still held for the other gets time to go out first
  client.on('close', () => setTimeout(() => upstream.destroy(), upDelay + 2000));
  upstream.on('close', () => setTimeout(() => client.destroy(), downDelay + 2000));
});
server.listen(listen.port, listen.host, () =>
  console.log(`delay-proxy ${listen.host}:${listen.port} -> ${target.host}:${target.port}, ${upDelay} ms up, ${downDelay} ms down, rate ${rateMbit || 'unlimited'} mbit`),
);
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(0));
