// The boundaries of docs/architecture.md hold in src/: no import against the table, no import cycle.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cycles, type ImportGraph, parseRules, readImportGraph, wrongDirections } from './import-rules.js';

const repo = join(import.meta.dirname, '..', '..');
const rules = parseRules(readFileSync(join(repo, 'docs', 'architecture.md'), 'utf8'));
const graph = readImportGraph(join(repo, 'src'));

describe('module boundaries', () => {
  it('the table covers every module in src/', () => {
    expect(rules.get('rafs')).toEqual(new Set(['native', 'util']));
    const modules = new Set([...graph.keys()].map((f) => (f.includes('/') ? f.split('/')[0] : f.replace(/\.ts$/, ''))));
    expect([...modules].filter((m) => !rules.has(m!))).toEqual([]);
  });

  it('no import goes against the table', () => {
    expect(wrongDirections(graph, rules)).toEqual([]);
  });

  it('no files import each other round', () => {
    expect(cycles(graph)).toEqual([]);
  });

  it('the checks catch a wrong-direction import and a cycle', () => {
    const bad: ImportGraph = new Map([...graph, ['rafs/x.ts', ['daemon/daemon.ts']], ['util/a.ts', ['util/b.ts']], ['util/b.ts', ['util/a.ts']]]);
    expect(wrongDirections(bad, rules)).toContain('rafs/x.ts → daemon/daemon.ts: rafs may not import daemon');
    expect(cycles(bad)).toContainEqual(['util/a.ts', 'util/b.ts']);
    expect(readImportGraph(join(repo, 'src')).get('daemon/api.ts')).toContain('daemon/config.ts');
  });
});
