// An NBD export attached to the kernel's /dev/nbdN through the nbd driver's generic-netlink family,
// as nbd-client does: our NBD client does the handshake (NBD_OPT_GO), then the kernel is handed the
// connected sockets by descriptor number (it looks them up in our table while it runs our request)
// and speaks the transmission phase itself. The device outlives this process. When the serving
// daemon restarts, its connections die and the kernel holds requests for dead_conn_timeout;
// reattachNbd gives it fresh connections (NBD_CMD_RECONFIGURE) and the device goes on.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Socket } from 'node:net';
import { netlinkGenericTransact } from '../../native/index.js';
import { connectNbd } from './client.js';
import * as nl from './netlink.js';

export const NBD_UNAVAILABLE =
  'the kernel nbd driver is not available on this host (no /dev/nbd*, no nbd netlink family): use nbdfuse, or the FUSE file (mount --block)';

/** No nbd driver on this host; the message says what to use instead. */
export class NbdUnavailableError extends Error {
  constructor() {
    super(NBD_UNAVAILABLE);
  }
}

/** An NBD connection in the transmission phase (after NBD_OPT_GO), as src/block/nbd/client.ts makes it. */
export interface NbdConnection {
  socket: Socket;
  size: number;
  flags: number;
  close(): void;
}
export type ConnectNbd = (address: string, exportName: string) => Promise<NbdConnection>;

/** How this module reaches the kernel and the server (tests substitute them). */
export interface KernelAttachIo {
  transact(message: Buffer): Buffer;
  connect: ConnectNbd;
  devDir: string;
  sysBlockDir: string;
}

const hostIo: KernelAttachIo = { transact: (m) => netlinkGenericTransact(m), connect: connectNbd, devDir: '/dev', sysBlockDir: '/sys/block' };

/** EROFS's block: the flat image is made of them. */
const BLOCK_SIZE = 4096;
const DEFAULT_DEAD_CONN_TIMEOUT = 60;
const SEQ = 1;

export interface ConnectionOptions {
  /** `unix:/path` or `tcp:host:port`. */
  address: string;
  exportName: string;
  /** Connections the device spreads requests over (the server must allow several: NBD_FLAG_CAN_MULTI_CONN). */
  connections?: number;
  /** How long the kernel holds requests while every connection is dead, waiting for a reattach. */
  deadConnTimeout?: number;
  /** The kernel's name for what the device shows; a reattach must give the same one. */
  backend?: string;
}

export interface AttachOptions extends ConnectionOptions {
  /** The N of /dev/nbdN; the kernel picks a free one without it. */
  index?: number;
  /** Seconds before the kernel gives up on one request (its default without it). */
  timeout?: number;
}

export interface AttachedDevice {
  index: number;
  device: string;
  size: number;
}

const deviceName = (index: number): string => `/dev/nbd${index}`;

/** Attaches the export to /dev/nbdN and returns it. */
export async function attachNbd(opts: AttachOptions, io: KernelAttachIo = hostIo): Promise<AttachedDevice> {
  const family = nbdFamily(io);
  const connections = await openConnections(opts, io);
  const { size, flags } = connections[0]!;
  const index = handOver(connections, (sockets) => {
    const request = nl.nbdConnectRequest(family, {
      index: opts.index,
      sizeBytes: size,
      blockSizeBytes: size % BLOCK_SIZE === 0 ? BLOCK_SIZE : 512,
      timeoutSeconds: opts.timeout,
      serverFlags: flags,
      sockets,
      deadConnTimeoutSeconds: opts.deadConnTimeout ?? DEFAULT_DEAD_CONN_TIMEOUT,
      backend: opts.backend,
    }, SEQ);
    return nl.parseConnectReply(family, exchange(io, 'NBD_CMD_CONNECT', request));
  });
  return { index, device: deviceName(index), size };
}

/**
 * Gives device `index`, whose connections died with the daemon that served them, new ones to the
 * export (restarted). The export must have the device's size: another image would be wrong bytes.
 * The kernel takes a new socket only in place of a dead one; with none dead it keeps its own.
 */
export async function reattachNbd(index: number, opts: ConnectionOptions, io: KernelAttachIo = hostIo): Promise<AttachedDevice> {
  const family = nbdFamily(io);
  const deviceSize = attachedSize(io, index);
  const connections = await openConnections(opts, io);
  const { size } = connections[0]!;
  if (size !== deviceSize) {
    for (const c of connections) c.close();
    throw new Error(`${opts.address} export '${opts.exportName}' has ${size} bytes, ${deviceName(index)} ${deviceSize}: not the export the device was attached to`);
  }
  handOver(connections, (sockets) => {
    const request = nl.nbdReconfigureRequest(family, { index, sockets, deadConnTimeoutSeconds: opts.deadConnTimeout, backend: opts.backend }, SEQ);
    exchange(io, 'NBD_CMD_RECONFIGURE', request);
  });
  return { index, device: deviceName(index), size };
}

/** Disconnects /dev/nbdN (the kernel sends NBD_CMD_DISC and drops its sockets). */
export function detachNbd(index: number, io: KernelAttachIo = hostIo): void {
  const family = nbdFamily(io);
  exchange(io, 'NBD_CMD_DISCONNECT', nl.nbdDisconnectRequest(family, index, SEQ));
}

export interface NbdDevice extends nl.NbdDeviceStatus {
  device: string;
}

/** Every nbd device the kernel has (or the one at `index`), and whether it is connected. */
export function nbdStatus(index?: number, io: KernelAttachIo = hostIo): NbdDevice[] {
  const family = nbdFamily(io);
  const devices = nl.parseStatusReply(family, exchange(io, 'NBD_CMD_STATUS', nl.nbdStatusRequest(family, index, SEQ)));
  return devices.map((d) => ({ ...d, device: deviceName(d.index) }));
}

function exchange(io: KernelAttachIo, what: string, request: Buffer): nl.NetlinkMessage[] {
  return nl.decodeReplies(what, io.transact(request), SEQ);
}

/** The nbd family's id; the plain "not available" error when the driver is absent. */
function nbdFamily(io: KernelAttachIo): number {
  try {
    return nl.parseFamilyReply(exchange(io, `CTRL_CMD_GETFAMILY ${nl.NBD_GENL_FAMILY_NAME}`, nl.getFamilyRequest(nl.NBD_GENL_FAMILY_NAME, SEQ))).id;
  } catch (err) {
    if (!(err instanceof nl.NetlinkError && err.code === 'ENOENT')) throw err;
    if (hasNbdDevices(io.devDir)) {
      throw new Error('the kernel nbd driver has no netlink interface (Linux before 4.12): attach with nbd-client, or use nbdfuse');
    }
    throw new NbdUnavailableError();
  }
}

function hasNbdDevices(devDir: string): boolean {
  try {
    return readdirSync(devDir).some((name) => /^nbd\d+$/.test(name));
  } catch {
    return false;
  }
}

/** The size of attached device `index` from sysfs (512-byte sectors), or an error when it has none. */
function attachedSize(io: KernelAttachIo, index: number): number {
  let sectors: string;
  try {
    sectors = readFileSync(join(io.sysBlockDir, `nbd${index}`, 'size'), 'utf8');
  } catch {
    throw new Error(`${deviceName(index)} does not exist`);
  }
  const size = Number(sectors.trim()) * 512;
  if (!Number.isSafeInteger(size) || size === 0) throw new Error(`${deviceName(index)} is not attached`);
  return size;
}

/** `opts.connections` connections to the export, all of one size; none left open on failure. */
async function openConnections(opts: ConnectionOptions, io: KernelAttachIo): Promise<NbdConnection[]> {
  const count = opts.connections ?? 1;
  if (!Number.isSafeInteger(count) || count < 1 || count > 16) throw new RangeError(`connections must be 1 to 16, got ${count}`);
  const connections: NbdConnection[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const c = await io.connect(opts.address, opts.exportName);
      connections.push(c);
      if (c.size !== connections[0]!.size) throw new Error(`${opts.address}: export '${opts.exportName}' changed size between connections`);
    }
    if (count > 1 && !(connections[0]!.flags & nl.NBD_FLAG_CAN_MULTI_CONN)) {
      throw new Error(`${opts.address}: the server does not allow several connections to one export (no NBD_FLAG_CAN_MULTI_CONN)`);
    }
    return connections;
  } catch (err) {
    for (const c of connections) c.close();
    throw err;
  }
}

interface StreamHandle {
  fd?: number;
  readStop?(): number;
  reading?: boolean;
}

/** The descriptor of a connection's socket; Node stops reading it, the server's replies are now the kernel's. */
function socketFd(c: NbdConnection): number {
  const handle = (c.socket as unknown as { _handle?: StreamHandle })._handle;
  const fd = handle?.fd;
  if (handle === undefined || fd === undefined || fd < 0) throw new Error('NBD connection has no socket descriptor (closed?)');
  handle.readStop?.();
  handle.reading = false;
  return fd;
}

/**
 * Runs the request that gives the connections' sockets to the kernel. Taken, the kernel holds its
 * own reference to each, and ours is closed without a word on the wire (an NBD_CMD_DISC now would
 * end the device's connection); refused, they are still ours to close politely.
 */
function handOver<T>(connections: NbdConnection[], request: (sockets: number[]) => T): T {
  let result: T;
  try {
    result = request(connections.map(socketFd));
  } catch (err) {
    for (const c of connections) c.close();
    throw err;
  }
  for (const c of connections) c.socket.destroy();
  return result;
}
