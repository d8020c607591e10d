// The layers of the source tree, as rules on its import graph (checked by scripts/layers.test.ts).
// From the bottom: cache/ (the store: no SQL, no sockets) and telemetry/ (what the hot path
// records: metrics, query statistics, the logger); invalidation/ (what statements read and write);
// proxy/, changes/ and fleet/ (the wire, the change streams, the Redis bus); admin/ (reads and
// serves what telemetry/ holds); cli/ (wires it all together). config/ is read by every layer.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

export interface LayerRule {
  /**
   * Directories (`proxy`, `proxy/pg`) or file-name prefixes (`invalidation/mysql-`, ending in `-`)
   * whose files the rule covers, tests included.
   */
  readonly from: readonly string[];
  /** Directories or file-name prefixes (as in `from`), or packages (`mysql2`, `node:net`), those files may not import. */
  readonly forbid: readonly string[];
  readonly why: string;
}

const SOCKETS = ['net', 'tls', 'dgram', 'http', 'https', 'http2'].flatMap((m) => [m, `node:${m}`]);
const DRIVERS = ['libpg-query', 'mysql2', 'pg', 'pg-protocol', 'ioredis', 'undici', '@electric-sql/pglite'];

export const LAYER_RULES: readonly LayerRule[] = [
  {
    from: ['proxy', 'cache', 'invalidation', 'changes', 'fleet', 'telemetry'],
    forbid: ['admin', 'cli'],
    why: 'admin/ only reads and serves what the layers below record; cli/ only wires them together',
  },
  {
    from: ['telemetry'],
    forbid: ['proxy', 'cache', 'invalidation', 'changes', 'fleet'],
    why: 'telemetry/ sits below everything that records into it',
  },
  {
    from: ['cache'],
    forbid: ['proxy', 'invalidation', 'changes', 'fleet', 'telemetry', ...SOCKETS, ...DRIVERS],
    why: 'the store knows nothing of SQL or sockets: keys and tags are strings built by the caller',
  },
  {
    from: ['invalidation/mysql-'],
    forbid: ['invalidation/pg-'],
    why: 'what both protocols share lives in invalidation/statement-facts.ts, not in the other protocol\'s modules',
  },
  {
    from: ['invalidation/pg-'],
    forbid: ['invalidation/mysql-'],
    why: 'what both protocols share lives in invalidation/statement-facts.ts, not in the other protocol\'s modules',
  },
];

export interface LayerViolation {
  /** The importing file, relative to the root, with `/` separators. */
  readonly file: string;
  readonly specifier: string;
  readonly why: string;
}

/** `from '...'`, `import '...'` and `import('...')`. */
const IMPORT = /\bfrom\s*['"]([^'"]+)['"]|\bimport\s*\(?\s*['"]([^'"]+)['"]/g;

export function importsOf(source: string): string[] {
  return [...source.matchAll(IMPORT)].map((m) => (m[1] ?? m[2])!);
}

/** What a specifier names, for the rules: a path from the root, or a package. */
function targetOf(file: string, specifier: string): string {
  if (!specifier.startsWith('.')) return specifier;
  return path.posix.normalize(path.posix.join(path.posix.dirname(file), specifier));
}

/** Is `target` (a path or a package) inside `place` (a directory, a file-name prefix or a package)? */
function within(target: string, place: string): boolean {
  return target === place || target.startsWith(place.endsWith('-') ? place : `${place}/`);
}

function* sourcesUnder(root: string, dir: string): Generator<string> {
  let entries;
  try {
    entries = readdirSync(path.join(root, dir), { withFileTypes: true });
  } catch {
    return;
  }
  for (const entry of entries) {
    if (entry.name === 'node_modules') continue;
    const rel = `${dir}/${entry.name}`;
    if (entry.isDirectory()) yield* sourcesUnder(root, rel);
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) yield rel;
  }
}

/** Every import under `root` that breaks a rule. */
export function layerViolations(root: string, rules: readonly LayerRule[] = LAYER_RULES): LayerViolation[] {
  const found: LayerViolation[] = [];
  for (const rule of rules) {
    for (const place of rule.from) {
      const dir = place.endsWith('-') ? path.posix.dirname(place) : place;
      for (const file of sourcesUnder(root, dir)) {
        if (!within(file, place)) continue;
        for (const specifier of importsOf(readFileSync(path.join(root, file), 'utf8'))) {
          const target = targetOf(file, specifier);
          if (rule.forbid.some((f) => within(target, f))) found.push({ file, specifier, why: rule.why });
        }
      }
    }
  }
  return found;
}
