// The race rule between invalidations and in-flight fills (DESIGN.md, "Tag versions").
//
// A fill takes a token when its query is sent upstream; its result may be stored only if none of
// its tags was invalidated since. Instead of one counter per tag copied into every fill, there is
// one global epoch: an invalidation advances it and records, per tag, the epoch of its last bump.
// The token is the epoch at send time — a single number, so taking one allocates nothing — and a
// fill is stale when any of its tags was bumped at a later epoch.
//
// The map of last bumps must not grow without bound (one row per table ever written, or per tag a
// peer proxy ever published). When it exceeds `maxTrackedTags` it is forgotten wholesale and the
// current epoch becomes the floor: any fill whose token predates the floor is refused, because its
// tags' history is gone. Refusing a fill only costs a later miss, never a stale answer.
//
// While suspended (the proxy cannot know what others wrote: a fleet member that lost its bus),
// no token is current; resuming forgets the history, so tokens taken while suspended stay refused.

declare const fillTokenBrand: unique symbol;
/** The epoch at which a fill's query was sent upstream; only `TagVersions.token()` makes one. */
export type FillToken = number & { readonly [fillTokenBrand]: true };

export class TagVersions {
  private epoch = 0;
  /** Tokens older than this are refused: the bumps between them and now were forgotten. */
  private floor = 0;
  private readonly lastBump = new Map<string, number>();
  private suspended = false;

  constructor(private readonly maxTrackedTags: number) {}

  /** Call when the fill's query is sent upstream (not when its result arrives). */
  token(): FillToken {
    return this.epoch as FillToken;
  }

  /** Marks the tags as changed now: fills holding an earlier token that depend on them go stale. */
  bump(tags: Iterable<string>): void {
    const epoch = ++this.epoch;
    for (const tag of tags) this.lastBump.set(tag, epoch);
    if (this.lastBump.size > this.maxTrackedTags) this.forgetHistory();
  }

  /** Every fill in flight goes stale, whatever its tags. */
  bumpAll(): void {
    this.epoch++;
    this.forgetHistory();
  }

  /** Until resume(), every fill is refused, whenever its token was taken. */
  suspend(): void {
    this.suspended = true;
  }

  /** Fills whose tokens were taken before now (while suspended included) stay refused. */
  resume(): void {
    this.suspended = false;
    this.bumpAll();
  }

  /** True when no tag in `tags` was bumped since `token` was taken (and not suspended). */
  isCurrent(token: FillToken, tags: readonly string[]): boolean {
    if (token < this.floor || this.suspended) return false;
    for (let i = 0; i < tags.length; i++) {
      const bumpedAt = this.lastBump.get(tags[i]!);
      if (bumpedAt !== undefined && bumpedAt > token) return false;
    }
    return true;
  }

  /** Tags whose last bump is remembered (a gauge for memory). */
  get trackedTags(): number {
    return this.lastBump.size;
  }

  private forgetHistory(): void {
    this.lastBump.clear();
    this.floor = this.epoch;
  }
}
