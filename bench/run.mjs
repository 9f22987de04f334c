// `npm run bench -- NAME [ARGS...]` runs bench/NAME/index.mjs with ARGS; without NAME, lists them.
// Each benchmark runs in its own node process so one cannot warm up or skew the next.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const benchDir = dirname(fileURLToPath(import.meta.url));
const entry = (name) => join(benchDir, name, 'index.mjs');

const available = readdirSync(benchDir, { withFileTypes: true })
  .filter((d) => d.isDirectory() && existsSync(entry(d.name)))
  .map((d) => d.name)
  .sort();

/** The first comment line of a benchmark, shown in the listing. */
function summary(name) {
  const first = readFileSync(entry(name), 'utf8').split('\n', 1)[0];
  return first.startsWith('//') ? first.replace(/^\/\/\s*/, '') : '';
}

const [name, ...args] = process.argv.slice(2);
if (!name) {
  console.log('usage: npm run bench -- NAME [ARGS...]\n\nbenchmarks:');
  for (const b of available) console.log(`  ${b.padEnd(12)} ${summary(b)}`);
  process.exit(0);
}
if (!available.includes(name)) {
  console.error(`no benchmark '${name}' (have: ${available.join(', ') || 'none'})`);
  process.exit(2);
}
const r = spawnSync(process.execPath, [entry(name), ...args], { stdio: 'inherit' });
process.exit(r.status ?? 1);
