import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { renderSettingsDoc } from './settings-doc.js';

test('docs/settings.md is the table generated from the code (run `make docs` after changing a setting)', () => {
  const path = fileURLToPath(new URL('../../docs/settings.md', import.meta.url));
  assert.fixture(readFileSync(path, 'utf8'), renderSettingsDoc());
});

test.run();
