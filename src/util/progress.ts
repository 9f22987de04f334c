// Progress bars on stderr for long jobs, one line per bar, redrawn in place with ANSI cursor-up.
// They draw only on a terminal: in a pipe or a CI log they would be noise, and the logs carry the same facts.
import { MiB, formatBytes } from './bytes.js';

/** What long-running library code reports to, so it needs no knowledge of terminals. */
export interface ProgressSink {
  setTotal(bytes: number): void;
  advance(bytes: number): void;
}

/** A sink that ignores everything, for callers that want no progress. */
export const noProgress: ProgressSink = { setTotal() {}, advance() {} };

export interface ProgressStream {
  write(text: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export interface ProgressGroupOptions {
  stream?: ProgressStream;
  /** Millisecond clock; tests pass a fake one. */
  now?: () => number;
  redrawIntervalMs?: number;
}

const METER_WIDTH = 20;

function formatDuration(seconds: number): string {
  const whole = Math.ceil(seconds);
  const minutes = Math.floor(whole / 60);
  return `${minutes}:${String(whole % 60).padStart(2, '0')}`;
}

function meter(fraction: number): string {
  const filled = Math.round(fraction * METER_WIDTH);
  return `[${'#'.repeat(filled)}${'-'.repeat(METER_WIDTH - filled)}]`;
}

export class ProgressBar implements ProgressSink {
  done = 0;
  // the rate clock starts at the first report, not at creation: a bar is often set up before its work starts
  private startedAt: number | undefined;

  constructor(
    readonly label: string,
    public total: number | undefined,
    private readonly clock: () => number,
    private readonly onChange: () => void,
  ) {}

  setTotal(bytes: number): void {
    this.startedAt ??= this.clock();
    this.total = bytes;
    this.onChange();
  }

  advance(bytes: number): void {
    this.startedAt ??= this.clock();
    this.done += bytes;
    this.onChange();
  }

  /** The bar as one line (no newline) at clock time `now`, its label padded to `labelWidth`. */
  render(now: number, labelWidth = this.label.length): string {
    const seconds = (now - (this.startedAt ?? now)) / 1000;
    const rate = seconds > 0 ? this.done / seconds : 0;
    const parts = [this.label.padEnd(labelWidth)];
    if (this.total === undefined) {
      parts.push(formatBytes(this.done));
    } else {
      const fraction = this.total > 0 ? Math.min(1, this.done / this.total) : 1;
      parts.push(meter(fraction), `${Math.floor(fraction * 100)}%`.padStart(4), `${formatBytes(this.done)}/${formatBytes(this.total)}`);
    }
    parts.push(`${(rate / MiB).toFixed(1)} MiB/s`);
    if (this.total !== undefined && rate > 0 && this.done < this.total) {
      parts.push(`ETA ${formatDuration((this.total - this.done) / rate)}`);
    }
    return parts.join(' ');
  }
}

/** Several bars drawn together (one per layer, say); a single bar is a group of one. */
export class ProgressGroup {
  /** False when the stream is not a terminal: bars still count but nothing is drawn. */
  readonly enabled: boolean;
  private readonly stream: ProgressStream;
  private readonly now: () => number;
  private readonly redrawIntervalMs: number;
  private readonly bars: ProgressBar[] = [];
  private linesOnScreen = 0;
  private lastDrawAt = -Infinity;
  private finished = false;

  constructor(options: ProgressGroupOptions = {}) {
    this.stream = options.stream ?? process.stderr;
    this.now = options.now ?? Date.now;
    this.redrawIntervalMs = options.redrawIntervalMs ?? 100;
    this.enabled = this.stream.isTTY === true;
  }

  add(label: string, total?: number): ProgressBar {
    const bar = new ProgressBar(label, total, this.now, () => this.redraw());
    // not drawn until it changes, so log lines written while setting up stay above the bars
    this.bars.push(bar);
    return bar;
  }

  /** Draws the final state, which throttling may have skipped, and stops drawing. */
  finish(): void {
    this.draw();
    this.finished = true;
  }

  // Throttled: a chunk loop may report thousands of times a second, a terminal needs ~10 frames.
  private redraw(): void {
    if (this.now() - this.lastDrawAt >= this.redrawIntervalMs) this.draw();
  }

  private draw(): void {
    if (!this.enabled || this.finished || this.bars.length === 0) return;
    const now = this.now();
    const labelWidth = Math.max(...this.bars.map((bar) => bar.label.length));
    // a line filling the last column makes some terminals wrap, which breaks the cursor-up arithmetic
    const maxWidth = this.stream.columns ? this.stream.columns - 1 : Infinity;
    const up = this.linesOnScreen > 0 ? `\x1b[${this.linesOnScreen}A` : '';
    const lines = this.bars.map((bar) => `\r\x1b[2K${bar.render(now, labelWidth).slice(0, maxWidth)}\n`);
    this.stream.write(up + lines.join(''));
    this.linesOnScreen = this.bars.length;
    this.lastDrawAt = now;
  }
}
