// The size budget (6 KB gzipped for the whole library) and the committed copy
// in engine/static being the build of these sources.

import test from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { gzipSync } from 'node:zlib';
import { bundle, STATIC_COPY } from '../build.mjs';

const BUDGET_BYTES = 6 * 1024;

test(`the minified library is at most ${BUDGET_BYTES} bytes gzipped`, async () => {
  const code = await bundle();
  const gzipped = gzipSync(code, { level: 9 }).length;
  console.log(`# clickstream.min.js: ${code.length} bytes minified, ${gzipped} bytes gzipped (budget ${BUDGET_BYTES})`);
  assert.ok(gzipped <= BUDGET_BYTES, `${gzipped} bytes gzipped is over the budget of ${BUDGET_BYTES}`);
  assert.doesNotMatch(code, /\bimport\b|\brequire\(/, 'one self-contained file, no runtime dependencies');
});

test('engine/static/clickstream.min.js is the build of these sources (run `npm run build`)', async () => {
  const committed = await readFile(STATIC_COPY, 'utf8');
  const fresh = await bundle();
  assert.ok(committed === fresh, 'stale: run `npm run build` in tracker-js and commit engine/static/clickstream.min.js');
});
