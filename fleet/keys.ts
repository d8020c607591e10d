// The names of the fleet's keys. All share the hash tag `{prefix}`, so in a Redis Cluster they live
// in one slot and a script may touch several of them; proxies with the same prefix form one fleet.

export interface FleetKeys {
  /** The Redis Stream of invalidations. */
  readonly stream: string;
  /** The counter that numbers the stream's entries (scripts.ts PUBLISH). */
  readonly seq: string;
  /** The lease of a leader's task. */
  lease(task: string): string;
}

export function fleetKeys(prefix: string): FleetKeys {
  const tag = `{${prefix}}`;
  return {
    stream: `${tag}:bus`,
    seq: `${tag}:bus:seq`,
    lease: (task) => `${tag}:leader:${task}`,
  };
}
