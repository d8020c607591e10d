// Leader election with a lease in Redis: `SET key holder NX PX ttl` takes it, a script renews it
// every third of the ttl while the holder still holds it, another releases it on shutdown. One
// proxy of the fleet runs a task (the change-stream reader, the bus's pulse) while it leads.
//
// The holder counts its lease from the moment it SENT the command that took or renewed it, less a
// margin for clock drift (as Redlock does): Redis's expiry starts later than that, so the holder's
// view ends first. When no renewal succeeds by then, the task is aborted, before another proxy can
// take the key over. A dead holder renews nothing: another proxy takes over within the ttl plus
// one attempt interval.
import type { Logger } from 'pino';
import type { RedisConnection } from './redis-connection.js';
import { Sleeper } from './sleeper.js';
import { RELEASE, RENEW, runScript } from './scripts.js';

/** Runs while this proxy leads; must stop (settle) soon after `signal` aborts. */
export type LeaderTask = (signal: AbortSignal) => Promise<void>;

export interface LeaseOptions {
  /** The lease's key (keys.ts `lease(task)`). */
  key: string;
  /** Who holds it: this proxy's instance id (each term adds its number, so a late release of an old term cannot end a new one). */
  holder: string;
  ttlMs: number;
  log: Logger;
  /** Called when leadership starts and ends (metrics, logs). */
  onChange?: (leading: boolean) => void;
}

/** Attempts to take a free lease this often (a fraction of the ttl). */
const ATTEMPTS_PER_TTL = 10;
const RENEWALS_PER_TTL = 3;

export class Lease {
  private stopped = false;
  private leading = false;
  /** Our view of when the lease ends unless renewed (performance.now() scale). */
  private validUntil = 0;
  private deadline: NodeJS.Timeout | null = null;
  private controller: AbortController | null = null;
  private running: Promise<void> | null = null;
  private loop: Promise<void> | null = null;
  private readonly sleeper = new Sleeper();
  private taken = 0;
  /** The value this proxy's current (or last) term wrote into the key. */
  private term = '';
  /** A term just ended: wait a ttl before competing again. */
  private resting = false;

  constructor(private readonly redis: RedisConnection, private readonly options: LeaseOptions) {}

  get isLeader(): boolean {
    return this.leading;
  }

  /** How many times this proxy became leader. */
  get terms(): number {
    return this.taken;
  }

  /** Competes for the lease until stop(), running `task` whenever this proxy holds it. */
  whileLeader(task: LeaderTask): void {
    if (this.loop !== null) throw new Error('whileLeader was called already');
    this.loop = this.compete(task);
  }

  /** Aborts the task, waits for it, and releases the lease so another proxy takes over now. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.sleeper.wake();
    await this.loop;
  }

  private async compete(task: LeaderTask): Promise<void> {
    const { ttlMs } = this.options;
    while (!this.stopped) {
      if (this.leading) {
        await this.sleeper.sleep(ttlMs / RENEWALS_PER_TTL);
        if (this.leading && !this.stopped && !(await this.attempt('renew'))) this.end('the lease could not be renewed');
      } else if (this.resting) {
        // After a term ended here, others get a whole ttl to take the lease first.
        this.resting = false;
        await this.sleeper.sleep(ttlMs);
      } else if (await this.attempt('take')) {
        this.begin(task);
      } else {
        await this.sleeper.sleep(ttlMs / ATTEMPTS_PER_TTL);
      }
    }
    this.end('shutting down');
    await this.running;
  }

  /** Takes or renews the lease; on success our view of it runs from when the command was sent. */
  private async attempt(how: 'take' | 'renew'): Promise<boolean> {
    const { key, ttlMs } = this.options;
    const term = how === 'take' ? `${this.options.holder}#${this.taken + 1}` : this.term;
    const sentAt = performance.now();
    try {
      const ok = how === 'take'
        ? await this.redis.call('SET', key, term, 'NX', 'PX', ttlMs) === 'OK'
        : await runScript(this.redis, RENEW, [key], [term, ttlMs]) === 1;
      if (!ok) return false;
    } catch (err) {
      this.options.log.debug({ err: (err as Error).message, key, how }, 'fleet: lease command failed');
      return false;
    }
    // Stopped meanwhile, or our view of the lease ran out while the renewal was under way (the
    // task was aborted already): give the lease back rather than hold it for nothing.
    if (this.stopped || (how === 'renew' && !this.leading)) {
      await this.release(term);
      return false;
    }
    this.term = term;
    this.validUntil = sentAt + ttlMs - (ttlMs / 100 + 2);
    this.armDeadline();
    return true;
  }

  /** Deletes the lease if it is still held in `term`. */
  private async release(term: string): Promise<void> {
    await runScript(this.redis, RELEASE, [this.options.key], [term]).catch(() => undefined);
  }

  private armDeadline(): void {
    if (this.deadline !== null) clearTimeout(this.deadline);
    this.deadline = setTimeout(() => this.end('the lease ran out before a renewal succeeded'), Math.max(0, this.validUntil - performance.now()));
  }

  private begin(task: LeaderTask): void {
    this.leading = true;
    this.taken++;
    const controller = new AbortController();
    this.controller = controller;
    const term = this.term;
    this.options.log.info({ key: this.options.key }, 'fleet: leading');
    this.options.onChange?.(true);
    // A task that ends by itself gives the lease back: another proxy may do better.
    this.running = task(controller.signal).then(
      () => {
        if (!controller.signal.aborted) this.end('the task ended');
      },
      (err: Error) => {
        this.options.log.warn({ key: this.options.key, err: err.message }, 'fleet: the leader\'s task failed');
        if (!controller.signal.aborted) this.end('the task failed');
      },
    ).then(() => this.release(term));
  }

  private end(why: string): void {
    if (!this.leading) return;
    this.leading = false;
    this.resting = true;
    if (this.deadline !== null) clearTimeout(this.deadline);
    this.deadline = null;
    this.controller?.abort();
    this.options.log.info({ key: this.options.key, why }, 'fleet: no longer leading');
    this.options.onChange?.(false);
    this.sleeper.wake();
  }
}
