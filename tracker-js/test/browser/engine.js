// Starts the real engine (`clickstream up`: broker, Redis, worker, HTTP app) on a
// free port for the browser tests, and stops it with SIGTERM (it stops its children).
//
// The command: $CLICKSTREAM_BIN, else the repo's .venv/bin/clickstream, else
// `clickstream` on PATH, else `python3 -m engine.cli` from the repo root.

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const API_KEY = 'tracker-e2e-key';

function engineCommand() {
  if (process.env.CLICKSTREAM_BIN) return process.env.CLICKSTREAM_BIN.trim().split(/\s+/);
  const venv = join(REPO, '.venv', 'bin', 'clickstream');
  if (existsSync(venv)) return [venv];
  if (spawnSync('sh', ['-c', 'command -v clickstream']).status === 0) return ['clickstream'];
  return ['python3', '-m', 'engine.cli'];
}

function freePort() {
  return new Promise((ok, fail) => {
    const server = createServer();
    server.on('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => ok(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function startEngine({ timeoutMs = 120_000, env: extraEnv = {} } = {}) {
  const port = await freePort();
  const dataDir = mkdtempSync(join(tmpdir(), 'clickstream-e2e-'));
  const [cmd, ...args] = engineCommand();
  const env = Object.assign({}, process.env, {
    CLICKSTREAM_DATA_DIR: dataDir,
    CLICKSTREAM_API_KEYS: API_KEY,
    CLICKSTREAM_LOG_LEVEL: 'warning',
    PYTHONPATH: [REPO, process.env.PYTHONPATH].filter(Boolean).join(':'),
  }, extraEnv);
  // cwd: an empty folder, so no stray ./rules folder replaces the demo catalog.
  const child = spawn(cmd, [...args, 'up', '--port', String(port)], { cwd: dataDir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  const exited = new Promise((r) => child.on('exit', (code, signal) => r({ code, signal })));
  let gone = null;
  exited.then((e) => (gone = e));
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (gone) throw new Error(`the engine exited (${JSON.stringify(gone)}) while starting:\n${output}`);
    if (Date.now() > deadline) {
      child.kill('SIGTERM');
      throw new Error(`the engine was not healthy after ${timeoutMs} ms:\n${output}`);
    }
    try {
      const res = await fetch(base + '/healthz');
      if (res.status === 200) break;
    } catch (e) { /* not listening yet */ }
    await sleep(250);
  }

  async function stop() {
    if (!gone) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(dataDir, { recursive: true, force: true });
  }

  function log(name = 'api') {
    try {
      return readFileSync(join(dataDir, 'logs', `${name}.log`), 'utf8');
    } catch (e) {
      return '';
    }
  }

  return { base, port, stop, log, output: () => output, command: [cmd, ...args].join(' ') };
}

export async function waitFor(what, probe, { timeoutMs = 30_000, everyMs = 250 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await probe();
    if (last) return last;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(everyMs);
  }
}
