// The demo shop embeds the current snippet, and its slots exist in the packaged catalog.

import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { snippet } from '../../src/snippet.js';

const ENGINE = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'engine');
const DEMO = join(ENGINE, 'demo');
const pages = readdirSync(DEMO).filter((f) => f.endsWith('.html'));

test('every demo page embeds the current snippet, loading /static/clickstream.min.js from this origin', () => {
  const expected = snippet({ src: '/static/clickstream.min.js', endpoint: '' });
  assert.deepEqual(pages.sort(), ['cart.html', 'index.html', 'login.html', 'preferences.html', 'product.html']);
  for (const page of pages) {
    assert.ok(readFileSync(join(DEMO, page), 'utf8').includes(expected), `${page}: the snippet differs from src/snippet.js`);
  }
});

test('the demo slots are the ones the packaged catalog defines', () => {
  const catalog = readFileSync(join(ENGINE, 'defaults', 'rules', 'demo.yaml'), 'utf8');
  const slots = new Set();
  for (const page of pages) {
    for (const [, name] of readFileSync(join(DEMO, page), 'utf8').matchAll(/data-clickstream-slot="([^"]+)"/g)) slots.add(name);
  }
  assert.deepEqual([...slots].sort(), ['hero', 'promo']);
  for (const slot of slots) assert.match(catalog, new RegExp(`^  ${slot}:$`, 'm'), `${slot} is not in demo.yaml`);
});
