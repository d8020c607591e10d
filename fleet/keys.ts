// The names of the fleet's keys. All share the hash tag `{prefix}`, so in a Redis Cluster they live
// in one slot and a script may touch several of them; proxies with the same prefix form one fleet.

export interface FleetKeys {
  /** The Redis Stream of invalidations. */
  readonly stream: string;
  /** The counter that numbers the stream's entries (scripts.ts PUBLISH). */
  readonly seq: string;
  /** The lease of a leader's task. */
  lease(task: string): string;
  /** The targets a protocol's change-stream leader is asked to follow (fleet/change-leader.ts). */
  streamsWanted(protocol: string): string;
  /** The second tier's tag table: per tag, the last bus entry that invalidated it; its era. */
  readonly l2Tags: string;
  /**
   * A second-tier entry. Outside the `{prefix}` hash tag, so a Redis Cluster spreads the entries
   * over its slots by key; `digest` is a hash of the L1 key.
   */
  l2Entry(protocol: string, digest: string): string;
}

export function fleetKeys(prefix: string): FleetKeys {
  const tag = `{${prefix}}`;
  return {
    stream: `${tag}:bus`,
    seq: `${tag}:bus:seq`,
    lease: (task) => `${tag}:leader:${task}`,
    streamsWanted: (protocol) => `${tag}:cdc:${protocol}:wanted`,
    l2Tags: `${tag}:l2:tags`,
    l2Entry: (protocol, digest) => `${prefix}:l2:${protocol}:${digest}`,
  };
}
