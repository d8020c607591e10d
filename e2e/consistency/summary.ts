// The checker's report as text: one summary line (what CI logs and the README quotes), then the
// reasons for a failure with a few of the violations and errors behind them.
import type { CheckReport, Progress } from './checker.js';

export function summaryLine(r: CheckReport): string {
  const { writers, readers, keys, allowedLagMs } = r.options;
  const ratio = r.reads === 0 ? 0 : r.hits / r.reads;
  const lag = allowedLagMs === undefined || allowedLagMs === 0 ? '' : ` (writes straight to the database, allowed lag ${allowedLagMs} ms)`;
  return `consistency ${r.protocol}: ${r.elapsedSeconds.toFixed(1)} s, ${writers} writers${lag}, ${readers} readers, ${keys} keys: `
    + `reads ${r.reads} (hits ${r.hits}, of them coalesced ${r.coalesced}, misses ${r.misses}, bypass ${r.bypass}, hit ratio ${ratio.toFixed(2)}), `
    + `writes ${r.committed} committed / ${r.rolledBack} rolled back, errors ${r.errors.length}, violations ${r.violations}: `
    + (r.failures.length === 0 ? 'PASS' : 'FAIL');
}

export function details(r: CheckReport): string[] {
  const lines = [
    `  reads by path: ${Object.entries(r.readsByPath).map(([p, n]) => `${p} ${n}`).join(', ')}`,
    `  acknowledged writes by form: ${Object.entries(r.writesByForm).map(([f, n]) => `${f} ${n}`).join(', ')}`,
  ];
  if (r.behindLag > 0) lines.push(`  reads behind the allowed lag whose proxy had not yet applied the write (bus lag, not violations): ${r.behindLag}`);
  for (const f of r.failures) lines.push(`  failed: ${f}`);
  if (r.violations > 0) {
    lines.push(`  violations by kind: ${Object.entries(r.violationsByKind).map(([k, n]) => `${k} ${n}`).join(', ')}`);
    for (const v of r.violationSamples) {
      lines.push(`    ${v.kind}: ${v.how}: key ${v.key} returned ${v.returned ?? 'nothing'}, required ${v.required}`);
    }
  }
  for (const e of r.errors.slice(0, 10)) lines.push(`  error: ${e}`);
  return lines;
}

export function progressLine(protocol: string, p: Progress): string {
  return `  ${protocol} ${p.elapsedSeconds.toFixed(0)} s: reads ${p.reads} (hits ${p.hits}, misses ${p.misses}, bypass ${p.bypass}), `
    + `writes ${p.committed} committed / ${p.rolledBack} rolled back, violations ${p.violations}`;
}
