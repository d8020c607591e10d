import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { importsOf, layerViolations } from './layers.js';

// dist/scripts/layers.test.js -> the repository root, where the .ts sources are.
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

test('the source tree keeps its layers', () => {
  const violations = layerViolations(ROOT).map((v) => `${v.file} imports ${v.specifier}: ${v.why}`);
  assert.equal(violations, []);
});

test('the checker reads every form of import', () => {
  const source = [
    "import type { A } from '../admin/a.js';",
    "import { B,\n  C } from 'mysql2/promise';",
    "export { D } from './d.js';",
    "import './side-effect.js';",
    "const e = await import('node:net');",
    '// nothing here: a comment without quotes',
  ].join('\n');
  assert.equal(importsOf(source), ['../admin/a.js', 'mysql2/promise', './d.js', './side-effect.js', 'node:net']);
});

test('the checker finds each kind of violation in a tree that has them', () => {
  const root = mkdtempSync(path.join(os.tmpdir(), 'sidecache-layers-'));
  try {
    const write = (rel: string, text: string): void => {
      mkdirSync(path.join(root, path.dirname(rel)), { recursive: true });
      writeFileSync(path.join(root, rel), text);
    };
    write('proxy/pg/relay.ts', "import type { Logger } from '../../cli/log.js';\nimport { x } from '../../telemetry/metrics.js';\n");
    write('changes/follower.test.ts', "import { createMetrics } from '../admin/metrics.js';\n");
    write('cache/store.ts', "import net from 'node:net';\nimport { tags } from './tags.js';\nimport { parse } from 'libpg-query';\n");
    write('cache/tags.ts', "import { analyse } from '../invalidation/pg-analysis.js';\n");
    write('telemetry/metrics.ts', "import type { PgCache } from '../proxy/pg/pg-cache.js';\nimport type { Config } from '../config/settings.js';\n");
    write('admin/api.ts', "import type { Invalidation } from '../proxy/result-cache.js';\n");
    write('invalidation/mysql-analysis.ts', "import type { StatementKind } from './pg-analysis.js';\nimport { x } from './statement-facts.js';\n");
    write('invalidation/pg-analysis.ts', "import { widestKind } from './statement-facts.js';\n");
    write('invalidation/pg-facts.ts', "import { tokenize } from './mysql-lexer.js';\n");
    const found = layerViolations(root).map((v) => `${v.file} -> ${v.specifier}`).sort();
    assert.equal(found, [
      'cache/store.ts -> libpg-query',
      'cache/store.ts -> node:net',
      'cache/tags.ts -> ../invalidation/pg-analysis.js',
      'changes/follower.test.ts -> ../admin/metrics.js',
      'invalidation/mysql-analysis.ts -> ./pg-analysis.js',
      'invalidation/pg-facts.ts -> ./mysql-lexer.js',
      'proxy/pg/relay.ts -> ../../cli/log.js',
      'telemetry/metrics.ts -> ../proxy/pg/pg-cache.js',
    ]);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test.run();
