// `nydusify-ts nbd attach|reattach|detach|status`: an NBD export as the kernel's /dev/nbdN (netlink,
// as nbd-client does); reattach gives a device fresh connections to a restarted daemon. Where the
// kernel has no nbd driver each says so and exits 1.
import { Command, InvalidArgumentError, Option } from 'commander';
import { parseNbdAddress } from '../block/nbd/address.js';
import { attachNbd, detachNbd, nbdStatus, reattachNbd } from '../block/nbd/kernel-attach.js';

interface AttachFlags {
  nbd: string;
  export: string;
  index?: number;
  connections: number;
  deadConnTimeout?: number;
  timeout?: number;
  backend?: string;
}

const print = (line: string): void => void process.stdout.write(`${line}\n`);

function parseCount(value: string): number {
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(Number(value))) throw new InvalidArgumentError('expected a non-negative integer.');
  return Number(value);
}

/** `N`, `nbdN` or `/dev/nbdN`. */
function parseDevice(value: string): number {
  const m = /^(?:\/dev\/)?(?:nbd)?(\d+)$/.exec(value);
  if (!m) throw new InvalidArgumentError('expected N, nbdN or /dev/nbdN.');
  return parseCount(m[1]!);
}

function parseAddress(value: string): string {
  try {
    parseNbdAddress(value);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
  return value;
}

async function attach(flags: AttachFlags): Promise<void> {
  const attached = await attachNbd({
    address: flags.nbd,
    exportName: flags.export,
    index: flags.index,
    connections: flags.connections,
    deadConnTimeout: flags.deadConnTimeout,
    timeout: flags.timeout,
    backend: flags.backend,
  });
  print(attached.device);
}

async function reattach(index: number, flags: AttachFlags): Promise<void> {
  const attached = await reattachNbd(index, { address: flags.nbd, exportName: flags.export, connections: flags.connections, deadConnTimeout: flags.deadConnTimeout, backend: flags.backend });
  print(attached.device);
}

function status(flags: { json?: boolean }): void {
  const devices = nbdStatus();
  if (flags.json) return print(JSON.stringify(devices));
  for (const d of devices) print(`${d.device}  ${d.connected ? 'connected' : 'free'}`);
}

export function nbdCommand(): Command {
  const nbd = new Command('nbd').description("attach NBD exports to the kernel's /dev/nbdN (needs the nbd driver)");
  nbd.command('attach').description('connect to an export and attach it; prints /dev/nbdN')
    .addOption(new Option('--nbd <address>', 'the server: unix:SOCKET or tcp:HOST:PORT').argParser(parseAddress).makeOptionMandatory())
    .option('--export <name>', 'export name', '')
    .option('--index <n>', 'attach to /dev/nbdN (default: a free one)', parseCount)
    .option('--connections <n>', 'connections to the server', parseCount, 1)
    .option('--dead-conn-timeout <seconds>', 'how long reads wait for a restarted server (default 60)', parseCount)
    .option('--timeout <seconds>', "how long one request may take (default: the kernel's)", parseCount)
    .option('--backend <id>', 'name the kernel keeps for the device; a reattach must give the same')
    .action(attach);
  nbd.command('reattach').description('give an attached device fresh connections (after its daemon restarted); the export must have its size')
    .argument('<device>', 'N, nbdN or /dev/nbdN', parseDevice)
    .addOption(new Option('--nbd <address>', 'the server: unix:SOCKET or tcp:HOST:PORT').argParser(parseAddress).makeOptionMandatory())
    .option('--export <name>', 'export name', '')
    .option('--connections <n>', 'connections to the server', parseCount, 1)
    .option('--dead-conn-timeout <seconds>', 'how long reads wait for a restarted server (default 60)', parseCount)
    .option('--backend <id>', 'the name given when the device was attached')
    .action(reattach);
  nbd.command('detach').description('disconnect /dev/nbdN').argument('<device>', 'N, nbdN or /dev/nbdN', parseDevice)
    .action((index: number) => detachNbd(index));
  nbd.command('status').description('the nbd devices and whether each is connected')
    .option('--json', 'print JSON').action(status);
  return nbd;
}
