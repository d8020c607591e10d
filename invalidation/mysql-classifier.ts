// The statement classifier the proxy calls for every MySQL statement text: analyzes a text once and
// answers repeats from a bounded LRU map keyed by the exact text, so the analysis never runs on the
// hit path. One classifier per dialect (sql_mode quoting flags, lower_case_table_names, server
// version): the same text can read differently under another one.

import { CLASSIFIER_DEFAULTS } from './pg-classifier.js';
import { analyzeMysql, type MysqlAnalysisOptions, type MysqlStatementAnalysis } from './mysql-analysis.js';

export interface MysqlClassifierOptions {
  /** Distinct texts remembered. */
  readonly maxEntries?: number;
  /** Longer texts are analyzed on every call and not remembered (bulk INSERTs rarely repeat). */
  readonly maxTextLength?: number;
  /** Sum of the lengths of remembered texts, in UTF-16 code units: bounds the keys' memory. */
  readonly maxTotalTextLength?: number;
  /** How texts are read; pass the same to mysqlStatementShape. */
  readonly dialect?: MysqlAnalysisOptions;
}

export interface MysqlClassifierStats {
  /** Lookups answered from the map. */
  readonly hits: number;
  /** Lookups that ran the analysis (including texts too long to remember). */
  readonly misses: number;
  /** Texts remembered now. */
  readonly entries: number;
  /** Sum of the lengths of the remembered texts. */
  readonly textLength: number;
  /** Misses that were not remembered because the text exceeded maxTextLength. */
  readonly tooLong: number;
}

type Limits = Required<Omit<MysqlClassifierOptions, 'dialect'>>;

export class MysqlClassifier {
  readonly dialect: Readonly<MysqlAnalysisOptions>;
  readonly #limits: Limits;
  // A Map iterates in insertion order: re-inserting on a hit keeps the least recently used first.
  readonly #entries = new Map<string, MysqlStatementAnalysis>();
  #textLength = 0;
  #hits = 0;
  #misses = 0;
  #tooLong = 0;

  constructor(options: MysqlClassifierOptions = {}) {
    const { dialect = {}, ...limits } = options;
    this.dialect = Object.freeze({ ...dialect });
    this.#limits = { ...CLASSIFIER_DEFAULTS, ...limits };
    for (const [key, value] of Object.entries(this.#limits)) {
      if (!Number.isSafeInteger(value) || value < 1) throw new RangeError(`MysqlClassifier ${key} must be a positive integer, got ${value}`);
    }
  }

  /** The analysis of `text`; the same frozen object for every call with the same text. */
  classify(text: string): MysqlStatementAnalysis {
    const known = this.#entries.get(text);
    if (known !== undefined) {
      this.#hits++;
      this.#entries.delete(text);
      this.#entries.set(text, known);
      return known;
    }
    this.#misses++;
    const analysis = analyzeMysql(text, this.dialect);
    if (text.length > this.#limits.maxTextLength) {
      this.#tooLong++;
      return analysis;
    }
    this.#entries.set(text, analysis);
    this.#textLength += text.length;
    this.#evict();
    return analysis;
  }

  stats(): MysqlClassifierStats {
    return {
      hits: this.#hits, misses: this.#misses, entries: this.#entries.size,
      textLength: this.#textLength, tooLong: this.#tooLong,
    };
  }

  #evict(): void {
    while (this.#entries.size > this.#limits.maxEntries || this.#textLength > this.#limits.maxTotalTextLength) {
      const oldest = this.#entries.keys().next().value as string;
      this.#entries.delete(oldest);
      this.#textLength -= oldest.length;
    }
  }
}
