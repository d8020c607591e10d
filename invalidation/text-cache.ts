// A bounded LRU of analyses keyed by exact statement text, shared by the PostgreSQL and MySQL
// classifiers: the analysis runs once per distinct text and never on the hit path.

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
  /** Sum of the lengths of the remembered texts. */
  readonly textLength: number;
  /** Misses that were not remembered because the text exceeded maxTextLength. */
  readonly tooLong: number;
}

export class TextCache<A> {
  readonly #limits: Required<TextCacheOptions>;
  // A Map iterates in insertion order: re-inserting on a hit keeps the least recently used first.
  readonly #entries = new Map<string, A>();
  #textLength = 0;
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
  }

  /** The analysis of `text`; the same object for every call with the same text while remembered. */
  get(text: string): A {
    const known = this.#entries.get(text);
    if (known !== undefined) {
      this.#hits++;
      this.#entries.delete(text);
      this.#entries.set(text, known);
      return known;
    }
    this.#misses++;
    const analysis = this.analyze(text);
    if (text.length > this.#limits.maxTextLength) {
      this.#tooLong++;
      return analysis;
    }
    this.#entries.set(text, analysis);
    this.#textLength += text.length;
    this.#evict();
    return analysis;
  }

  stats(): TextCacheStats {
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
