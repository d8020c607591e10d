// Writes docs/settings.md from the settings table (`make docs`).
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { renderSettingsDoc } from '../config/settings-doc.js';

const path = fileURLToPath(new URL('../../docs/settings.md', import.meta.url));
writeFileSync(path, renderSettingsDoc());
process.stdout.write(`wrote ${path}\n`);
