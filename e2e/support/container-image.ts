// The container image as files on disk, for testing it without Docker: a Dockerfile parser that
// understands the instructions sidecache's Dockerfile uses (and fails loudly on others), the build
// context per .dockerignore, and the image's /app laid out in a directory.
//
// Stages without a compiler are run for real (their RUN lines run here with `sh -c`, in the
// stage's directory); the stage that runs `tsc` is stood in for by the project's own build: its
// dist/ files whose sources the build context holds, which is what `tsc` in the image emits.
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import dockerignoreModule from '@balena/dockerignore';
import { REPO_ROOT } from './sidecache.js';

// A CommonJS module whose types declare `export default`; it sets `factory.default = factory` for that.
const dockerignore = dockerignoreModule.default;
/** The official node images' `node` user, for a Dockerfile that names it instead of a number. */
const NODE_IMAGE_USER = { uid: 1000, gid: 1000 };

export interface Instruction {
  keyword: string;
  args: string;
  line: number;
}

export interface Stage {
  name: string;
  base: string;
  instructions: Instruction[];
}

/** Instructions of a Dockerfile: comments dropped, `\` continuations joined, ARG defaults applied to FROM. */
export function parseDockerfile(text: string): Stage[] {
  const instructions: Instruction[] = [];
  let pending = '';
  let startLine = 0;
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line.startsWith('#') || (line === '' && pending === '')) return;
    if (pending === '') startLine = i + 1;
    pending += (pending ? ' ' : '') + line.replace(/\\$/, '').trim();
    if (line.endsWith('\\')) return;
    const m = /^(\S+)\s*(.*)$/.exec(pending)!;
    instructions.push({ keyword: m[1]!.toUpperCase(), args: m[2]!, line: startLine });
    pending = '';
  });
  const globalArgs = new Map<string, string>();
  const stages: Stage[] = [];
  for (const ins of instructions) {
    if (ins.keyword === 'ARG' && stages.length === 0) {
      const [name, value = ''] = ins.args.split('=');
      globalArgs.set(name!, value);
    } else if (ins.keyword === 'FROM') {
      const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args);
      assert.ok(m, `Dockerfile:${ins.line}: FROM ${ins.args}`);
      const base = m[1]!.replace(/\$\{(\w+)\}|\$(\w+)/g, (_, a: string | undefined, b: string | undefined) => globalArgs.get((a ?? b)!) ?? '');
      stages.push({ name: m[2] ?? String(stages.length), base, instructions: [] });
    } else {
      assert.ok(stages.length > 0, `Dockerfile:${ins.line}: ${ins.keyword} before FROM`);
      stages.at(-1)!.instructions.push(ins);
    }
  }
  return stages;
}

/** The exec (JSON) form of ENTRYPOINT/CMD/HEALTHCHECK; the shell form would put sh in front of node as PID 1. */
export function execForm(ins: Instruction, text = ins.args): string[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = null;
  }
  assert.ok(Array.isArray(parsed) && parsed.every((s) => typeof s === 'string'), `Dockerfile:${ins.line}: ${ins.keyword} must use the JSON form`);
  return parsed as string[];
}

/** `ENV A=1 B=2` (unquoted values, which is all this Dockerfile needs). */
function envPairs(ins: Instruction): [string, string][] {
  return ins.args.split(/\s+/).map((pair) => {
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=([^"'\s]*)$/.exec(pair);
    assert.ok(m, `Dockerfile:${ins.line}: ENV ${pair}: only KEY=value pairs without quotes are understood here`);
    return [m[1]!, m[2]!];
  });
}

export interface Healthcheck {
  command: string[];
  timeoutMs: number;
}

function healthcheck(ins: Instruction): Healthcheck {
  const m = /^((?:--[a-z-]+=\S+\s+)*)CMD\s+(.*)$/.exec(ins.args);
  assert.ok(m, `Dockerfile:${ins.line}: HEALTHCHECK [options] CMD [...]`);
  const timeout = /--timeout=(\d+)s/.exec(m[1]!);
  return { command: execForm(ins, m[2]), timeoutMs: timeout ? Number(timeout[1]) * 1000 : 30_000 };
}

/** The identity a USER line names; null for a name this test cannot map to numbers. */
function userOf(spec: string): { uid: number; gid: number } | null {
  const [user, group] = spec.split(':') as [string, string | undefined];
  if (user === 'root') return { uid: 0, gid: 0 };
  if (user === 'node') return NODE_IMAGE_USER;
  if (!/^\d+$/.test(user) || (group !== undefined && !/^\d+$/.test(group))) return null;
  return { uid: Number(user), gid: Number(group ?? user) };
}

/** What the final stage declares about the running container. */
export interface RuntimeImage {
  stage: Stage;
  env: Record<string, string>;
  user: { uid: number; gid: number } | null;
  entrypoint: string[];
  healthcheck: Healthcheck;
  stopSignal: NodeJS.Signals;
  exposed: number[];
}

export function runtimeImage(stages: Stage[]): RuntimeImage {
  const stage = stages.at(-1)!;
  const image: Partial<RuntimeImage> & { env: Record<string, string>; exposed: number[] } = { stage, env: {}, exposed: [], user: null, stopSignal: 'SIGTERM' };
  for (const ins of stage.instructions) {
    switch (ins.keyword) {
      case 'ENV': for (const [k, v] of envPairs(ins)) image.env[k] = v; break;
      case 'EXPOSE': image.exposed.push(...ins.args.split(/\s+/).map((p) => Number(p.replace(/\/tcp$/, '')))); break;
      case 'ENTRYPOINT': image.entrypoint = execForm(ins); break;
      case 'HEALTHCHECK': image.healthcheck = healthcheck(ins); break;
      case 'STOPSIGNAL': image.stopSignal = ins.args as NodeJS.Signals; break;
      case 'USER': image.user = userOf(ins.args); break;
    }
  }
  assert.ok(image.entrypoint, 'the runtime stage has an ENTRYPOINT');
  assert.ok(image.healthcheck, 'the runtime stage has a HEALTHCHECK');
  return image as RuntimeImage;
}

// ---------------------------------------------------------------- the image's file system, on disk

export type ContextFilter = (relPath: string) => boolean;

export function contextFilter(dockerignoreText: string): ContextFilter {
  const patterns = dockerignoreText.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  // The walk below skips ignored directories whole, which is only right without exceptions.
  assert.not.ok(patterns.some((p) => p.startsWith('!')), '.dockerignore: teach this test about ! exceptions');
  const ig = dockerignore().add(patterns);
  return (rel) => !ig.ignores(rel);
}

/** Files of the build context, relative to the repository root. */
export async function contextFiles(inContext: ContextFilter, rel = ''): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await fs.readdir(path.join(REPO_ROOT, rel), { withFileTypes: true })) {
    const p = rel ? `${rel}/${entry.name}` : entry.name;
    if (!inContext(p)) continue;
    if (entry.isDirectory()) out.push(...await contextFiles(inContext, p));
    else out.push(p);
  }
  return out;
}

export async function filesUnder(dir: string, rel = ''): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await fs.readdir(path.join(dir, rel), { withFileTypes: true })) {
    const p = rel ? `${rel}/${entry.name}` : entry.name;
    if (entry.isDirectory()) out.push(...await filesUnder(dir, p));
    else out.push(p);
  }
  return out;
}

/** Copies a file or a directory tree, creating the parent directories. */
async function copyPath(from: string, to: string): Promise<void> {
  await fs.mkdir(path.dirname(to), { recursive: true });
  await fs.cp(from, to, { recursive: true, preserveTimestamps: true });
}

/** Where `COPY src dest` puts things, relative to /app (the WORKDIR every stage must use). */
function destIn(dir: string, dest: string): string {
  const rel = dest.startsWith('/app') ? dest.slice('/app'.length) : dest;
  assert.ok(!path.isAbsolute(rel) || dest.startsWith('/app'), `COPY destination ${dest} outside /app`);
  return path.join(dir, rel);
}

interface Layout {
  /** The build context's files, relative to the repository root. */
  context: string[];
  root: string;
  stages: Map<string, string>;
}

/** Lays out the final stage's /app in a directory under root and returns that directory. */
export async function layOutImage(stages: Stage[], inContext: ContextFilter, root: string): Promise<string> {
  const layout: Layout = { context: await contextFiles(inContext), root, stages: new Map() };
  return layOutStage(stages.at(-1)!, stages, layout);
}

/** Runs a stage's instructions into a directory standing for its /app; returns that directory. */
async function layOutStage(stage: Stage, all: Stage[], layout: Layout): Promise<string> {
  const done = layout.stages.get(stage.name);
  if (done) return done;
  const dir = path.join(layout.root, `stage-${stage.name}`);
  await fs.mkdir(dir, { recursive: true });
  const compiles = stage.instructions.some((i) => i.keyword === 'RUN' && /\btsc\b/.test(i.args));
  if (compiles) {
    await standInForBuild(stage, dir, layout);
  } else {
    for (const ins of stage.instructions) {
      if (ins.keyword === 'WORKDIR') assert.is(ins.args, '/app', `Dockerfile:${ins.line}: this test maps /app only`);
      if (ins.keyword === 'COPY') await copyInstruction(ins, dir, all, layout);
      if (ins.keyword === 'RUN') await run('sh', ['-c', ins.args], { cwd: dir, env: { ...process.env, npm_config_prefer_offline: 'true' } });
      assert.not.ok(['ADD', 'VOLUME', 'ONBUILD'].includes(ins.keyword), `Dockerfile:${ins.line}: ${ins.keyword} is not understood here`);
    }
  }
  layout.stages.set(stage.name, dir);
  return dir;
}

/**
 * The compiling stage must copy the whole context and run the project's own build command; its
 * output is the project's dist/ restricted to sources in the context (tsc emits one .js per .ts).
 */
async function standInForBuild(stage: Stage, dir: string, layout: Layout): Promise<void> {
  const steps = stage.instructions.map((i) => `${i.keyword} ${i.args}`);
  assert.ok(steps.includes('COPY . .'), `stage ${stage.name} compiles the whole build context`);
  assert.is(steps.filter((s) => s.startsWith('RUN')).at(-1), 'RUN node_modules/.bin/tsc -p tsconfig.json', `stage ${stage.name} runs the project's build`);
  const tsconfig = JSON.parse(await fs.readFile(path.join(REPO_ROOT, 'tsconfig.json'), 'utf8')) as { include: string[] };
  const sources = new Set(layout.context.filter((f) => f.endsWith('.ts') && tsconfig.include.includes(f.split('/')[0]!)));
  for (const file of await filesUnder(path.join(REPO_ROOT, 'dist'))) {
    if (sources.has(file.replace(/\.js(\.map)?$/, '.ts'))) await copyPath(path.join(REPO_ROOT, 'dist', file), path.join(dir, 'dist', file));
  }
}

async function copyInstruction(ins: Instruction, dir: string, all: Stage[], layout: Layout): Promise<void> {
  const words = ins.args.split(/\s+/);
  const from = words[0]!.startsWith('--from=') ? words.shift()!.slice('--from='.length) : null;
  assert.not.ok(words.some((w) => w.startsWith('--')), `Dockerfile:${ins.line}: COPY options other than --from are not understood here`);
  const dest = words.pop()!;
  for (const src of words) {
    if (from !== null) {
      const source = all.find((s) => s.name === from);
      assert.ok(source, `Dockerfile:${ins.line}: no stage ${from}`);
      assert.ok(src.startsWith('/app/'), `Dockerfile:${ins.line}: this test maps /app only`);
      const sourceDir = await layOutStage(source, all, layout);
      const at = path.join(sourceDir, src.slice('/app/'.length));
      assert.ok(existsSync(at), `Dockerfile:${ins.line}: stage ${from} has no ${src}`);
      await copyPath(at, destIn(dir, dest));
      continue;
    }
    const rel = src.replace(/^\.\/?/, '').replace(/\/$/, '');
    const files = layout.context.filter((f) => rel === '' || f === rel || f.startsWith(rel + '/'));
    assert.ok(files.length > 0, `Dockerfile:${ins.line}: ${src} is not in the build context (.dockerignore?)`);
    for (const f of files) {
      // A directory's contents land in dest; a single file lands in dest/ (or as dest).
      const target = f === rel && !dest.endsWith('/') && dest !== '.' && dest !== './' ? destIn(dir, dest)
        : path.join(destIn(dir, dest), f === rel ? path.basename(f) : f.slice(rel ? rel.length + 1 : 0));
      await copyPath(path.join(REPO_ROOT, f), target);
    }
  }
}

/** Runs a command to completion; rejects with its stderr when it fails. */
function run(cmd: string, args: string[], opts: { cwd: string; env: NodeJS.ProcessEnv }): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { ...opts, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => { err += d; });
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} ${args.join(' ')} exited ${code}:\n${err}`))));
  });
}

// ---------------------------------------------------------------- module graph

/** Relative and bare imports of a compiled module, by a pattern that fits tsc's ESM output. */
export function importsOf(source: string): string[] {
  return [...source.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|^import\s+)['"]([^'"]+)['"]/gm)].map((m) => m[1]!);
}

/** Files a compiled module reads beside itself, e.g. `new URL('./client.js', import.meta.url)`. */
export function siblingsOf(source: string): string[] {
  return [...source.matchAll(/new URL\(\s*['"](\.[^'"]+)['"]\s*,\s*import\.meta\.url\s*\)/g)].map((m) => m[1]!);
}

export function packageOf(specifier: string): string {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!;
}
