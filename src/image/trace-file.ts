// An access trace file (src/trace/access-trace.ts) read from disk: a regular file (looked at before
// it is opened: a FIFO would block the open), no longer than a trace may be, parsed and checked.
import { readFile, stat } from 'node:fs/promises';
import { type AccessTrace, MAX_TRACE_BYTES, parseAccessTrace, TraceFormatError } from '../trace/access-trace.js';

export async function readTraceFile(path: string): Promise<AccessTrace> {
  const info = await stat(path);
  if (!info.isFile()) throw new TraceFormatError(`${path} is not a regular file`);
  if (info.size > MAX_TRACE_BYTES) throw new TraceFormatError(`${path} has ${info.size} bytes, more than ${MAX_TRACE_BYTES}`);
  // parseAccessTrace checks the length again: the file may have grown since
  return parseAccessTrace(await readFile(path));
}
