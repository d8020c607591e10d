// What the two bench commands (run.ts for PostgreSQL, mysql-run.ts for MySQL) parse alike: counts,
// comma-separated workload and target lists. A wrong option is a UsageError, printed with the usage.

export class UsageError extends Error {
  override name = 'UsageError';
}

export function positiveInt(flag: string, text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`${flag} must be a positive integer, got "${text}"`);
  return n;
}

/** The workloads a comma-separated list names, by key, in its order. */
export function workloadList<W extends { key: string }>(text: string, all: readonly W[]): W[] {
  return text.split(',').map((key) => {
    const workload = all.find((w) => w.key === key.trim());
    if (!workload) throw new UsageError(`unknown workload "${key}"`);
    return workload;
  });
}

/** The targets a comma-separated list names, in its order; direct must be one (ratios are to it). */
export function targetList<T extends string>(text: string, all: readonly T[]): T[] {
  const targets = text.split(',').map((t) => {
    if (!all.includes(t.trim() as T)) throw new UsageError(`unknown target "${t}"`);
    return t.trim() as T;
  });
  if (!targets.includes('direct' as T)) throw new UsageError('--targets must include direct: ratios are relative to it');
  return targets;
}

export function onOff(flag: string, text: string): boolean {
  if (text !== 'on' && text !== 'off') throw new UsageError(`${flag} must be on or off, got "${text}"`);
  return text === 'on';
}
