// Runs a group of this directory's *.test.js files with node --test, one file at a time, so
// that meson can run several groups side by side (tests/meson.build):
//   node run-group.js NAME...        those files (NAME.test.js)
//   node run-group.js --rest NAME... every other file: a new test file lands here by itself
// Exits with node --test's status.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const rest = args[0] === '--rest';
const names = new Set(rest ? args.slice(1) : args);
const all = fs.readdirSync(here).filter((f) => f.endsWith('.test.js')).map((f) => f.slice(0, -'.test.js'.length));
for (const n of names) {
  if (!all.includes(n)) {
    console.error(`run-group.js: no ${n}.test.js in ${here}`);
    process.exit(2);
  }
}
const files = all.filter((n) => names.has(n) !== rest).sort().map((n) => path.join(here, `${n}.test.js`));
if (files.length === 0) {
  console.error('run-group.js: no test file in the group');
  process.exit(2);
}
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=1', ...files], { stdio: 'inherit' });
if (r.error) throw r.error;
process.exit(r.status ?? 1);
