// The container deployment, tested without Docker (none on the build machines): the Dockerfile,
// .dockerignore, examples/compose.yaml and the YAML in docs/deploy.md.
//
// The image's /app is laid out on disk as the runtime stage's COPY lines describe (see
// support/container-image.ts). Then the ENTRYPOINT runs with the image's ENV, as the image's USER,
// against the local PostgreSQL and MariaDB, the HEALTHCHECK command is run against it, and the
// STOPSIGNAL must end it with exit code 0.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import { envName, loadConfig, SETTINGS, type Config } from '../config/settings.js';
import {
  contextFiles, contextFilter, execForm, filesUnder, importsOf, layOutImage, packageOf, parseDockerfile, runtimeImage, siblingsOf,
} from './support/container-image.js';
import { DIRECT_MYSQL, DIRECT_PG, REPO_ROOT } from './support/sidecache.js';

const STARTUP_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 5_000;
/** Compiled files that belong to tests, wherever they sit. */
const TEST_FILE = /(^|\/)(test-[^/]*|[^/]*\.test|[^/]*\.bench)\.js(\.map)?$/;

// ---------------------------------------------------------------- helpers

function exited(child: ChildProcess, timeoutMs: number): Promise<{ code: number | null; signal: NodeJS.Signals | null; timedOut: boolean }> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      resolve({ code: null, signal: 'SIGKILL', timedOut: true });
    }, timeoutMs);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, timedOut: false });
    });
  });
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** `docker compose` environment: a map or a list of KEY=value. */
function composeEnv(service: Record<string, unknown>): Record<string, string> {
  const env = service['environment'];
  if (env === undefined) return {};
  if (Array.isArray(env)) return Object.fromEntries(env.map((e: string) => [e.split('=')[0], e.slice(e.indexOf('=') + 1)]));
  return Object.fromEntries(Object.entries(env as Record<string, unknown>).map(([k, v]) => [k, String(v)]));
}

/**
 * Every SIDECACHE_* variable sidecache reads: one per setting, plus the few read directly in
 * the runtime sources (`process.env.SIDECACHE_...`; none today).
 */
async function knownVariables(runtimeDist: string): Promise<Set<string>> {
  const known = new Set(SETTINGS.map(envName));
  for (const f of await filesUnder(runtimeDist)) {
    if (!f.endsWith('.js')) continue;
    const text = await fs.readFile(path.join(runtimeDist, f), 'utf8');
    for (const m of text.matchAll(/process\.env\.(SIDECACHE_[A-Z0-9_]+)/g)) known.add(m[1]!);
  }
  return known;
}

function configOf(env: Record<string, string>, where: string): Config {
  try {
    return loadConfig([], env).config;
  } catch (err) {
    assert.unreachable(`${where}: ${(err as Error).message}`);
    throw err;
  }
}

// ---------------------------------------------------------------- shared state

const stages = parseDockerfile(await fs.readFile(path.join(REPO_ROOT, 'Dockerfile'), 'utf8'));
const image = runtimeImage(stages);
const inContext = contextFilter(await fs.readFile(path.join(REPO_ROOT, '.dockerignore'), 'utf8'));
const packageJson = JSON.parse(await fs.readFile(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
const lock = JSON.parse(await fs.readFile(path.join(REPO_ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> };

let tmp = '';
let app = '';
let known = new Set<string>();
let imageConfig: Config;

test.before(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'sidecache-image-'));
  // mkdtemp makes the directory private to its owner; the image's user must be able to read /app.
  await fs.chmod(tmp, 0o755);
  app = await layOutImage(stages, inContext, tmp);
  known = await knownVariables(path.join(app, 'dist'));
  imageConfig = configOf(image.env, 'Dockerfile ENV');
});

test.after(async () => {
  if (tmp) await fs.rm(tmp, { recursive: true, force: true });
});

// ---------------------------------------------------------------- tests

test('the Dockerfile follows the usual lint rules', () => {
  for (const stage of stages) {
    assert.ok(/:[^:@]+$|@sha256:/.test(stage.base) && !stage.base.endsWith(':latest'), `FROM ${stage.base}: pin a tag (not latest)`);
    for (const ins of stage.instructions) {
      assert.is.not(ins.keyword, 'ADD', `Dockerfile:${ins.line}: use COPY`);
      if (ins.keyword === 'WORKDIR') assert.ok(ins.args.startsWith('/'), `Dockerfile:${ins.line}: WORKDIR must be absolute`);
      if (ins.keyword === 'CMD') execForm(ins);
    }
  }
  assert.ok(image.user, 'the runtime stage sets USER to a number or to node');
  assert.is.not(image.user.uid, 0, 'the image must not run as root');
  assert.is(image.stopSignal, 'SIGTERM', 'sidecache drains on SIGTERM');
  assert.is(image.entrypoint[0], 'node');
});

test('the image listens where it says: ENV names real settings, EXPOSE covers every listener', () => {
  for (const name of Object.keys(image.env).filter((k) => k.startsWith('SIDECACHE_'))) {
    assert.ok(known.has(name), `Dockerfile ENV ${name} is not a sidecache setting`);
  }
  assert.is(imageConfig.adminListen.host, '0.0.0.0', 'probes and scrapers reach /healthz and /metrics from outside the container');
  for (const listener of [imageConfig.pgListen, imageConfig.mysqlListen, imageConfig.adminListen]) {
    assert.ok(image.exposed.includes(listener.port), `EXPOSE ${listener.port}`);
  }
});

test('the image holds production code only: no tests, no dev dependencies, every runtime import present', async () => {
  const dist = await filesUnder(path.join(app, 'dist'));
  assert.ok(dist.length > 0, 'dist/ was copied');
  for (const f of dist) {
    assert.not.match(f, TEST_FILE, `test file in the image: dist/${f}`);
    assert.not.ok(['e2e', 'bench', 'scripts'].includes(f.split('/')[0]!), `not runtime code: dist/${f}`);
  }
  // The lock file marks packages only dev dependencies need (mysql2 itself depends on @types/node).
  for (const [at, entry] of Object.entries(lock.packages)) {
    if (entry.dev === true) assert.not.ok(existsSync(path.join(app, at)), `dev-only package in the image: ${at}`);
  }
  // Walk what `node bin/sidecache` loads: bin/sidecache imports ../dist/cli/main.js.
  const bin = await fs.readFile(path.join(app, 'bin/sidecache'), 'utf8');
  const pending = importsOf(bin).map((s) => path.resolve(app, 'bin', s));
  const seen = new Set<string>();
  while (pending.length > 0) {
    const file = pending.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    assert.ok(existsSync(file), `imported but not in the image: ${path.relative(app, file)}`);
    const source = await fs.readFile(file, 'utf8');
    for (const sibling of siblingsOf(source)) pending.push(path.resolve(path.dirname(file), sibling));
    for (const spec of importsOf(source)) {
      if (spec.startsWith('.')) pending.push(path.resolve(path.dirname(file), spec));
      else if (!spec.startsWith('node:')) {
        assert.ok(spec in packageJson.dependencies || packageOf(spec) in packageJson.dependencies, `${path.relative(app, file)} imports ${spec}, not a production dependency`);
        assert.ok(existsSync(path.join(app, 'node_modules', packageOf(spec))), `${spec} is not installed in the image`);
      }
    }
  }
  assert.ok(seen.size > 10, `the import graph was walked (${seen.size} files)`);
});

test('no source in the build context imports a file the context leaves out', async () => {
  const context = new Set(await contextFiles(inContext));
  for (const file of [...context].filter((f) => f.endsWith('.ts'))) {
    for (const spec of importsOf(await fs.readFile(path.join(REPO_ROOT, file), 'utf8'))) {
      if (!spec.startsWith('.')) continue;
      const target = path.relative(REPO_ROOT, path.resolve(REPO_ROOT, path.dirname(file), spec)).replace(/\.js$/, '.ts');
      assert.ok(context.has(target) || !existsSync(path.join(REPO_ROOT, target)), `${file} imports ${spec}, which .dockerignore leaves out of the image build`);
    }
  }
});

test('the ENTRYPOINT serves PostgreSQL and MySQL as the image user, passes its HEALTHCHECK and stops cleanly on STOPSIGNAL', async () => {
  // The image's listeners bind 0.0.0.0 on fixed ports; here each gets a free loopback port
  // (5432 and 3306 belong to the real servers on this machine).
  const env: Record<string, string> = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: '/nonexistent', ...image.env };
  for (const name of Object.keys(env).filter((k) => /^SIDECACHE_\w+_LISTEN$/.test(k))) env[name] = `127.0.0.1:${await freePort()}`;
  env['SIDECACHE_PG_UPSTREAM'] = `postgres://${DIRECT_PG.host}:${DIRECT_PG.port}`;
  env['SIDECACHE_MYSQL_UPSTREAM'] = `mysql://${DIRECT_MYSQL.host}:${DIRECT_MYSQL.port}`;
  const config = configOf(env, 'test environment');
  // As root, run as the image's USER: it must manage with files it cannot write.
  const identity = process.getuid?.() === 0 && image.user !== null ? image.user : {};
  const start = (argv: string[]): ChildProcess => spawn(argv[0] === 'node' ? process.execPath : argv[0]!, argv.slice(1), {
    cwd: app, env, ...identity, stdio: ['ignore', 'pipe', 'pipe'],
  });

  const proxy = start(image.entrypoint);
  const killOnExit = (): void => void proxy.kill('SIGKILL');
  process.once('exit', killOnExit);
  let out = '';
  proxy.stdout!.setEncoding('utf8').on('data', (d: string) => { out += d; });
  proxy.stderr!.setEncoding('utf8').on('data', (d: string) => { out += d; });
  let pgClient: pg.Client | null = null;
  let myClient: mysql.Connection | null = null;
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`not ready within ${STARTUP_TIMEOUT_MS} ms:\n${out}`)), STARTUP_TIMEOUT_MS);
      proxy.stdout!.on('data', () => { if (out.includes('sidecache: ready')) { clearTimeout(timer); resolve(); } });
      proxy.once('exit', (code) => { clearTimeout(timer); reject(new Error(`exited with ${code} before ready:\n${out}`)); });
    });

    const check = await exited(start(image.healthcheck.command), image.healthcheck.timeoutMs);
    assert.equal(check, { code: 0, signal: null, timedOut: false }, 'HEALTHCHECK passes on a running sidecache');

    pgClient = new pg.Client({ ...DIRECT_PG, port: config.pgListen.port });
    // The shutdown below ends this session with 57P01; that is expected.
    pgClient.on('error', () => {});
    await pgClient.connect();
    const { rows } = await pgClient.query<{ answer: number }>('SELECT 42 AS answer');
    assert.equal(rows, [{ answer: 42 }]);

    myClient = await mysql.createConnection({ ...DIRECT_MYSQL, port: config.mysqlListen.port });
    myClient.on('error', () => {});
    const [result] = await myClient.query('SELECT 1 + 1 AS two');
    assert.equal(result, [{ two: 2 }]);

    // Stopped with both clients still connected, as `docker stop` would find it.
    proxy.kill(image.stopSignal);
    const stop = await exited(proxy, STOP_TIMEOUT_MS);
    assert.equal(stop, { code: 0, signal: null, timedOut: false }, `exit on ${image.stopSignal}:\n${out}`);

    const after = await exited(start(image.healthcheck.command), image.healthcheck.timeoutMs);
    assert.is(after.code, 1, 'HEALTHCHECK fails once sidecache is gone');
  } finally {
    proxy.kill('SIGKILL');
    process.off('exit', killOnExit);
    await pgClient?.end().catch(() => {});
    myClient?.destroy();
  }
});

// ---------------------------------------------------------------- compose and Kubernetes

test('examples/compose.yaml: real settings, upstreams and ports that match, health-gated start', async () => {
  const examples = path.join(REPO_ROOT, 'examples');
  const compose = parseYaml(await fs.readFile(path.join(examples, 'compose.yaml'), 'utf8')) as { services: Record<string, Record<string, unknown>> };
  const services = compose.services;
  for (const name of ['postgres', 'mariadb', 'sidecache', 'app']) assert.ok(services[name], `service ${name}`);

  const sidecache = services['sidecache']!;
  const build = sidecache['build'] as string | { context: string; dockerfile?: string };
  const context = path.resolve(examples, typeof build === 'string' ? build : build.context);
  const dockerfile = typeof build === 'string' ? 'Dockerfile' : build.dockerfile ?? 'Dockerfile';
  assert.is(path.join(context, dockerfile), path.join(REPO_ROOT, 'Dockerfile'), 'sidecache is built from this repository');

  for (const [name, service] of Object.entries(services)) {
    for (const key of Object.keys(composeEnv(service)).filter((k) => k.startsWith('SIDECACHE_'))) {
      assert.ok(known.has(key), `service ${name}: ${key} is not a sidecache setting`);
    }
  }
  const config = configOf({ ...image.env, ...composeEnv(sidecache) }, 'compose service sidecache');
  const upstreams: [string, { host: string; port: number } | null, RegExp][] = [
    ['SIDECACHE_PG_UPSTREAM', config.pgUpstream, /^postgres:/],
    ['SIDECACHE_MYSQL_UPSTREAM', config.mysqlUpstream, /^(mariadb|mysql):/],
  ];
  for (const [name, upstream, imagePattern] of upstreams) {
    assert.ok(upstream, `${name} is set`);
    const target = services[upstream.host];
    assert.ok(target, `${name} names service ${upstream.host}`);
    assert.match(String(target['image']), imagePattern, `${name}: service ${upstream.host} runs the right database`);
  }
  assert.is(config.pgUpstream!.port, 5432);
  assert.is(config.mysqlUpstream!.port, 3306);

  const listening = [config.pgListen.port, config.mysqlListen.port, config.adminListen.port];
  for (const mapping of sidecache['ports'] as string[]) {
    const containerPort = Number(String(mapping).split(':').at(-1));
    assert.ok(listening.includes(containerPort), `published ${mapping}: sidecache listens on ${listening.join(', ')}`);
  }

  for (const [name, service] of Object.entries(services)) {
    for (const [dependency, spec] of Object.entries((service['depends_on'] ?? {}) as Record<string, { condition?: string }>)) {
      if (spec.condition !== 'service_healthy') continue;
      const target = services[dependency]!;
      const checked = target['healthcheck'] !== undefined || (dependency === 'sidecache' && image.healthcheck !== undefined);
      assert.ok(checked, `service ${name} waits for ${dependency} to be healthy, which has no healthcheck`);
    }
    if (service['network_mode'] === 'service:sidecache') {
      // A sidecar app reaches sidecache on loopback, on the ports it listens on.
      const env = composeEnv(service);
      const host = env['PGHOST'] ?? env['MYSQL_HOST'];
      assert.ok(host === '127.0.0.1' || host === 'localhost', `service ${name} connects to loopback`);
      if (env['PGPORT'] !== undefined) assert.is(Number(env['PGPORT']), config.pgListen.port, `service ${name} PGPORT`);
      if (env['MYSQL_TCP_PORT'] !== undefined) assert.is(Number(env['MYSQL_TCP_PORT']), config.mysqlListen.port, `service ${name} MYSQL_TCP_PORT`);
    }
  }
});

/** The parts of a Kubernetes manifest the checks below read. */
interface Manifest {
  kind?: string;
  spec?: { template?: PodTemplate };
}

interface PodTemplate {
  metadata: { annotations: Record<string, string> };
  spec: { securityContext: { runAsNonRoot?: boolean; runAsUser?: number }; initContainers?: Container[]; containers: Container[] };
}

interface Probe {
  httpGet?: { path: string; port: string | number };
}

interface Container {
  name: string;
  image: string;
  env?: { name: string; value: string }[];
  ports?: { name: string; containerPort: number }[];
  startupProbe?: Probe;
  readinessProbe?: Probe;
  livenessProbe?: Probe;
}

test('docs/deploy.md: the Kubernetes sidecar uses real settings, probes the admin port and runs as the image user', async () => {
  const doc = await fs.readFile(path.join(REPO_ROOT, 'docs/deploy.md'), 'utf8');
  for (const m of doc.matchAll(/\bSIDECACHE_[A-Z0-9_]+/g)) assert.ok(known.has(m[0]), `docs/deploy.md mentions ${m[0]}, not a sidecache setting`);

  const blocks = [...doc.matchAll(/```yaml\n([\s\S]*?)```/g)].flatMap((m) => parseAllDocuments(m[1]!).map((d) => d.toJS() as Manifest));
  const deployment = blocks.find((b) => b.kind === 'Deployment');
  assert.ok(deployment?.spec?.template, 'a Deployment snippet');
  const pod = deployment.spec.template;
  const containers = [...(pod.spec.initContainers ?? []), ...pod.spec.containers];
  const sidecar = containers.find((c) => c.image.includes('sidecache'))!;
  assert.ok(sidecar, 'a sidecache container');
  const env = Object.fromEntries((sidecar.env ?? []).map((e) => [e.name, e.value]));
  const config = configOf({ ...image.env, ...env }, 'docs/deploy.md sidecache env');

  const ports = new Map((sidecar.ports ?? []).map((p) => [p.name, p.containerPort]));
  for (const probe of ['startupProbe', 'readinessProbe', 'livenessProbe'] as const) {
    const get = sidecar[probe]?.httpGet;
    assert.ok(get, `${probe} is set`);
    assert.is(get.path, '/healthz');
    assert.is(typeof get.port === 'string' ? ports.get(get.port) : get.port, config.adminListen.port, `${probe} asks the admin port`);
  }
  assert.is.not(config.adminListen.host, '127.0.0.1', 'the kubelet probes the pod IP, not loopback');
  assert.is(Number(pod.metadata.annotations['prometheus.io/port']), config.adminListen.port, 'metrics are scraped from the admin port');
  assert.is(pod.spec.securityContext.runAsNonRoot, true);
  assert.is(pod.spec.securityContext.runAsUser, image.user!.uid, 'runAsUser is the image USER');

  for (const app of containers.filter((c) => c !== sidecar)) {
    for (const e of app.env ?? []) {
      const url = URL.canParse(e.value) ? new URL(e.value) : null;
      if (url === null || url.hostname !== '127.0.0.1') continue;
      const port = url.protocol === 'mysql:' ? config.mysqlListen.port : config.pgListen.port;
      assert.is(Number(url.port), port, `container ${app.name} ${e.name} points at the sidecar's port`);
    }
  }
});

test.run();
