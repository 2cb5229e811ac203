// Builds the browser bundle: one minified IIFE, no runtime dependencies.
//   node build.mjs   -> dist/clickstream.min.js and ../engine/static/clickstream.min.js
// esbuild bundles (and shortens the internal `_` fields); terser then compresses
// the whole, some 5% smaller gzipped than esbuild's own minifier.
// The copy in engine/static is committed, so Python users get it without npm;
// test/size.test.js fails when it no longer matches a fresh build.

import { build } from 'esbuild';
import { minify } from 'terser';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const STATIC_COPY = join(here, '..', 'engine', 'static', 'clickstream.min.js');

export const buildOptions = {
  entryPoints: [join(here, 'src', 'browser.js')],
  bundle: true,
  minify: true,
  format: 'iife',
  target: 'es2018',
  legalComments: 'none',
  write: false,
  mangleProps: /^_/, // internal fields only: the public API keeps its names
};

export const terserOptions = {
  ecma: 2018,
  compress: { passes: 2 },
  format: { preamble: '/* clickstream-engine tracker | MIT */' },
};

export async function bundle() {
  const result = await build(buildOptions);
  return (await minify(result.outputFiles[0].text, terserOptions)).code;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const code = await bundle();
  for (const path of [join(here, 'dist', 'clickstream.min.js'), STATIC_COPY]) {
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, code);
  }
  const { gzipSync } = await import('node:zlib');
  console.log(`clickstream.min.js: ${code.length} bytes, ${gzipSync(code, { level: 9 }).length} gzipped`);
}
