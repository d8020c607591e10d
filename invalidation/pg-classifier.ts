// The statement classifier the proxy calls for every PostgreSQL statement text (or shape): analyzes
// a text once and answers repeats from a bounded LRU keyed by the exact text (text-cache.ts), so
// the parser (70-220 µs) never runs on the hit path.

import { analyzeSql, loadPgParser, type StatementAnalysis } from './pg-analysis.js';
import { TextCache, type TextCacheOptions, type TextCacheStats } from './text-cache.js';

export type PgClassifierOptions = TextCacheOptions;
export type PgClassifierStats = TextCacheStats;

export class PgClassifier {
  readonly #cache: TextCache<StatementAnalysis>;

  /** Loads the parser (once per process) and returns a classifier. */
  static async create(options: PgClassifierOptions = {}): Promise<PgClassifier> {
    await loadPgParser();
    return new PgClassifier(options);
  }

  private constructor(options: PgClassifierOptions) {
    this.#cache = new TextCache(analyzeSql, options, 'PgClassifier');
  }

  /** The analysis of `text`; the same frozen object for every call with the same text. */
  classify(text: string): StatementAnalysis {
    return this.#cache.get(text);
  }

  stats(): PgClassifierStats {
    return this.#cache.stats();
  }
}
