// Renders docs/settings.md from SETTINGS, so the documented table cannot drift from the code
// (config/settings-doc.test.ts fails when the checked-in file differs).
import { SETTINGS, envName } from './settings.js';

export function renderSettingsDoc(): string {
  const rows = SETTINGS.map((s) => `| \`--${s.flag}\` | \`${envName(s)}\` | ${s.default === null ? '(none)' : `\`${s.default}\``} | ${s.help} |`);
  return [
    '# Settings',
    '',
    'Generated from `config/settings.ts` by `make docs`; do not edit by hand.',
    '',
    'Every setting is a command-line flag and an environment variable; a flag wins over the variable.',
    'Sizes take `B`, `KiB`, `MiB`, `GiB` (e.g. `64MiB`); durations take `ms`, `s`, `m`, `h` (a bare number is seconds).',
    '',
    '| flag | environment | default | meaning |',
    '|---|---|---|---|',
    ...rows,
    '',
  ].join('\n');
}
