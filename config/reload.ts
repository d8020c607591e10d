// Reloading the configuration (SIGHUP, POST /api/config/reload): read the sources again, keep
// what cannot change in a running process, and say which settings changed and which need a restart.
import { isDeepStrictEqual } from 'node:util';
import { loadConfig, SETTINGS, type Config } from './settings.js';

/** What a reload did. */
export interface ReloadReport {
  /** Flag names of live settings whose new value now applies ('rules' for the cache rules). */
  readonly applied: readonly string[];
  /** Flag names that changed in the sources but keep their running value until a restart. */
  readonly needsRestart: readonly string[];
  /** The running config after the reload. */
  readonly config: Config;
}

/**
 * Re-reads the config from the same arguments and environment as at start (so only the file can
 * have changed). Changes are found against what was loaded last, not against the running config:
 * the quick start may have moved a listener to another port, which is not a change in the sources.
 */
export class ConfigReloader {
  private loaded: Config;

  constructor(private readonly argv: readonly string[], private readonly env: NodeJS.ProcessEnv, initial: Config) {
    this.loaded = initial;
  }

  /**
   * The running config with the live changes applied. Throws ConfigError (naming the key) when
   * the sources are invalid; nothing is changed then.
   */
  reload(running: Config): ReloadReport {
    const next = loadConfig(this.argv, this.env).config;
    const report = mergeReload(running, this.loaded, next);
    this.loaded = next;
    return report;
  }
}

/** Applies to `running` the live settings that differ between `before` and `after`. */
export function mergeReload(running: Config, before: Config, after: Config): ReloadReport {
  const applied: string[] = [];
  const needsRestart: string[] = [];
  const config = { ...running } as Record<keyof Config, unknown>;
  for (const s of SETTINGS) {
    if (isDeepStrictEqual(before[s.key], after[s.key])) continue;
    if (s.live) {
      config[s.key] = after[s.key];
      applied.push(s.flag);
    } else {
      needsRestart.push(s.flag);
    }
  }
  if (!before.cacheRules.equals(after.cacheRules)) {
    config.cacheRules = after.cacheRules;
    applied.push('rules');
  }
  return { applied, needsRestart, config: Object.freeze(config as unknown as Config) };
}
