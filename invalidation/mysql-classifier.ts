// The statement classifier the proxy calls for every MySQL statement text: analyzes a text once and
// answers repeats from a bounded LRU keyed by the exact text (text-cache.ts), so the analysis never
// runs on the hit path. One classifier per dialect (sql_mode quoting flags, lower_case_table_names,
// server version): the same text can read differently under another one.

import { analyzeMysql, type MysqlAnalysisOptions, type MysqlStatementAnalysis } from './mysql-analysis.js';
import { TextCache, type TextCacheOptions, type TextCacheStats } from './text-cache.js';

export interface MysqlClassifierOptions extends TextCacheOptions {
  /** How texts are read; pass the same to mysqlStatementShape. */
  readonly dialect?: MysqlAnalysisOptions;
}

export type MysqlClassifierStats = TextCacheStats;

export class MysqlClassifier {
  readonly dialect: Readonly<MysqlAnalysisOptions>;
  readonly #cache: TextCache<MysqlStatementAnalysis>;

  constructor(options: MysqlClassifierOptions = {}) {
    const { dialect = {}, ...limits } = options;
    this.dialect = Object.freeze({ ...dialect });
    this.#cache = new TextCache((text) => analyzeMysql(text, this.dialect), limits, 'MysqlClassifier');
  }

  /** The analysis of `text`; the same frozen object for every call with the same text. */
  classify(text: string): MysqlStatementAnalysis {
    return this.#cache.get(text);
  }

  stats(): MysqlClassifierStats {
    return this.#cache.stats();
  }
}
