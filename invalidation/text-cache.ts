// A bounded LRU of analyses keyed by exact statement text, shared by the PostgreSQL and MySQL
// classifiers: the analysis runs once per distinct text and never on the hit path.
import { LRUCache } from 'lru-cache';

export interface TextCacheOptions {
  /** Distinct texts remembered. */
  readonly maxEntries?: number;
  /** Longer texts are analyzed on every call and not remembered (bulk INSERTs rarely repeat). */
  readonly maxTextLength?: number;
  /** Sum of the lengths of remembered texts, in UTF-16 code units: bounds the keys' memory. */
  readonly maxTotalTextLength?: number;
}

export const TEXT_CACHE_DEFAULTS: Readonly<Required<TextCacheOptions>> = Object.freeze({
  maxEntries: 10_000,
  maxTextLength: 64 * 1024,
  maxTotalTextLength: 16 * 1024 * 1024,
});

export interface TextCacheStats {
  /** Lookups answered from the map. */
  readonly hits: number;
  /** Lookups that ran the analysis (including texts too long to remember). */
  readonly misses: number;
  /** Texts remembered now. */
  readonly entries: number;
  /** Sum of the lengths of the remembered texts (an empty one counts 1). */
  readonly textLength: number;
  /** Misses that were not remembered because the text exceeded maxTextLength. */
  readonly tooLong: number;
}

export class TextCache<A extends {}> {
  readonly #limits: Required<TextCacheOptions>;
  /**
   * Bounded by both entries and total text length: when full, the least recently used texts go
   * one by one, never the whole map. Each entry's size is its text's length (an empty text
   * counts 1: lru-cache sizes are positive).
   */
  readonly #entries: LRUCache<string, A>;
  #hits = 0;
  #misses = 0;
  #tooLong = 0;

  /** `owner` names the classifier in option errors. */
  constructor(private readonly analyze: (text: string) => A, options: TextCacheOptions, owner: string) {
    this.#limits = {
      maxEntries: options.maxEntries ?? TEXT_CACHE_DEFAULTS.maxEntries,
      maxTextLength: options.maxTextLength ?? TEXT_CACHE_DEFAULTS.maxTextLength,
      maxTotalTextLength: options.maxTotalTextLength ?? TEXT_CACHE_DEFAULTS.maxTotalTextLength,
    };
    for (const [key, value] of Object.entries(this.#limits)) {
      if (!Number.isSafeInteger(value) || value < 1) throw new RangeError(`${owner} ${key} must be a positive integer, got ${value}`);
    }
    this.#entries = new LRUCache<string, A>({
      max: this.#limits.maxEntries,
      maxSize: this.#limits.maxTotalTextLength,
      sizeCalculation: (_analysis, text) => Math.max(1, text.length),
    });
  }

  /** The analysis of `text`; the same object for every call with the same text while remembered. */
  get(text: string): A {
    const known = this.#entries.get(text);
    if (known !== undefined) {
      this.#hits++;
      return known;
    }
    this.#misses++;
    const analysis = this.analyze(text);
    if (text.length > this.#limits.maxTextLength) {
      this.#tooLong++;
      return analysis;
    }
    this.#entries.set(text, analysis);
    return analysis;
  }

  stats(): TextCacheStats {
    return {
      hits: this.#hits, misses: this.#misses, entries: this.#entries.size,
      textLength: this.#entries.calculatedSize, tooLong: this.#tooLong,
    };
  }
}
