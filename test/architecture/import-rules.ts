// The module boundaries of docs/architecture.md, checked against the code: every relative import
// under src/ (static, dynamic and type-only) is an edge between two files; an edge between two
// modules must be allowed by the table in the doc, and no set of files may import each other round.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

/** module → the modules it may import. */
export type Rules = Map<string, Set<string>>;
/** file (relative to src/) → the files it imports. */
export type ImportGraph = Map<string, string[]>;

/** Every `| module | may import |` table row of the doc (planned modules included). */
export function parseRules(markdown: string): Rules {
  const rules: Rules = new Map();
  let inTable = false;
  for (const line of markdown.split('\n')) {
    if (/^\|\s*module\s*\|\s*may import\s*\|/.test(line)) {
      inTable = true;
      continue;
    }
    if (!inTable) continue;
    const cells = line.split('|').slice(1, -1).map((c) => c.trim());
    if (cells.length !== 2) {
      inTable = false;
      continue;
    }
    if (/^-+$/.test(cells[0]!)) continue;
    const allowed = cells[1] === '—' || cells[1] === '' ? [] : cells[1]!.split(',').map((m) => m.trim());
    rules.set(cells[0]!, new Set(allowed));
  }
  return rules;
}

/** The module a file under src/ belongs to: its top folder, or its name for a top-level file. */
export function moduleOf(file: string): string {
  const [top, ...rest] = file.split('/');
  return rest.length === 0 ? top!.replace(/\.ts$/, '') : top!;
}

const IMPORT = /(?:^|\n)\s*(?:import|export)\s[^;]*?from\s+'(\.[^']+)'|import\(\s*'(\.[^']+)'\s*\)/g;

/** The relative imports of every .ts file under `srcDir`, as paths relative to it. */
export function readImportGraph(srcDir: string): ImportGraph {
  const graph: ImportGraph = new Map();
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, e.name);
      if (e.isDirectory()) walk(path);
      else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) {
        const text = readFileSync(path, 'utf8');
        const targets = [...text.matchAll(IMPORT)].map((m) => relative(srcDir, resolve(dirname(path), (m[1] ?? m[2])!)).replace(/\.js$/, '.ts'));
        graph.set(relative(srcDir, path), [...new Set(targets)]);
      }
    }
  };
  walk(srcDir);
  return graph;
}

/** Imports between modules that the rules do not allow, as `file → file` lines. */
export function wrongDirections(graph: ImportGraph, rules: Rules): string[] {
  const out: string[] = [];
  for (const [from, targets] of graph) {
    const a = moduleOf(from);
    for (const to of targets) {
      const b = moduleOf(to);
      if (a === b) continue;
      const allowed = rules.get(a);
      if (!allowed) out.push(`${from} → ${to}: module "${a}" is not in the table`);
      else if (!allowed.has(b)) out.push(`${from} → ${to}: ${a} may not import ${b}`);
    }
  }
  return out;
}

/** Sets of files that import each other round (strongly connected components of more than one file, or a file importing itself). */
export function cycles(graph: ImportGraph): string[][] {
  let counter = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, counter);
    low.set(v, counter++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) !== index.get(v)) return;
    const scc: string[] = [];
    let w: string;
    do {
      w = stack.pop()!;
      onStack.delete(w);
      scc.push(w);
    } while (w !== v);
    if (scc.length > 1 || (graph.get(v) ?? []).includes(v)) out.push(scc.sort());
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return out;
}
