import { describe, expect, it } from 'vitest';
import { MiB } from '../../src/util/bytes.js';
import { ProgressGroup } from '../../src/util/progress.js';

/** A fake terminal (or pipe) and a clock the test moves by hand. */
function setup(isTTY: boolean, columns?: number) {
  const writes: string[] = [];
  const clock = { ms: 0 };
  const group = new ProgressGroup({ stream: { isTTY, columns, write: (text: string) => writes.push(text) }, now: () => clock.ms });
  return { writes, clock, group };
}

const CURSOR_UP = /\x1b\[(\d+)A/;

describe('ProgressBar.render', () => {
  it('shows percent, bytes, rate and ETA when the total is known', () => {
    const { group } = setup(false);
    const bar = group.add('layer', 10 * MiB);
    bar.advance(2 * MiB); // the clock starts here, at the first report
    expect(bar.render(1000)).toBe('layer [####----------------]  20% 2.0 MiB/10.0 MiB 2.0 MiB/s ETA 0:04');
  });

  it('shows bytes and rate only when the total is unknown', () => {
    const { group } = setup(false);
    const bar = group.add('pull');
    bar.advance(3 * MiB);
    expect(bar.render(2000)).toBe('pull 3.0 MiB 1.5 MiB/s');
  });

  it('drops the ETA once done and treats an empty total as complete', () => {
    const { group } = setup(false);
    const bar = group.add('x', 0);
    bar.setTotal(0);
    expect(bar.render(500)).toBe('x [####################] 100% 0 B/0 B 0.0 MiB/s');
  });
});

describe('ProgressGroup', () => {
  it('draws nothing when the stream is not a terminal, but still counts', () => {
    const { writes, clock, group } = setup(false);
    const bar = group.add('layer', 100);
    for (let i = 0; i < 10; i++, clock.ms += 1000) bar.advance(10);
    group.finish();
    expect(group.enabled).toBe(false);
    expect(writes).toEqual([]);
    expect(bar.done).toBe(100);
  });

  it('redraws at most once per interval, and finish() draws the last state', () => {
    const { writes, clock, group } = setup(true);
    const bar = group.add('layer', 100);
    expect(writes).toHaveLength(0); // nothing until the first report
    bar.advance(10);
    clock.ms = 50;
    bar.advance(10);
    bar.advance(10);
    expect(writes).toHaveLength(1);
    clock.ms = 100;
    bar.advance(10);
    expect(writes).toHaveLength(2);
    bar.advance(60);
    group.finish();
    expect(writes).toHaveLength(3);
    expect(writes[2]).toContain('100%');
    bar.advance(1);
    group.finish();
    expect(writes).toHaveLength(3);
  });

  it('draws one line per bar and moves the cursor back up over them on redraw', () => {
    const { writes, clock, group } = setup(true);
    const first = group.add('sha256:aa', 10);
    const second = group.add('b', 20);
    first.advance(5);
    clock.ms = 200;
    second.advance(20);
    expect(writes[0]).not.toMatch(CURSOR_UP);
    expect(writes[0].match(/\n/g)).toHaveLength(2);
    expect(writes[1].match(CURSOR_UP)?.[1]).toBe('2');
    const lines = writes[1].replace(CURSOR_UP, '').split('\n').filter(Boolean);
    expect(lines[0]).toMatch(/^\r\x1b\[2Ksha256:aa \[#{10}-{10}\]  50%/);
    expect(lines[1]).toMatch(/^\r\x1b\[2Kb {9}\[#{20}\] 100%/); // labels padded to one width
  });

  it('cuts lines to fit the terminal so they never wrap', () => {
    const { writes, group } = setup(true, 30);
    group.add('a-rather-long-label', 100).advance(1);
    expect(writes[0]).toBe(`\r\x1b[2K${'a-rather-long-label [---------'.slice(0, 29)}\n`);
  });
});
