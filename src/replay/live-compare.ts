/**
 * `replay --expect-capture`: what an offline run transmitted on each port against what the
 * live run it replays transmitted (from-capture.ts), frame by frame, timestamps aside.
 */
import { comparePort, formatComparison, type Comparison } from './golden.ts';
import type { TxRecord } from '../ports/replay-port.ts';

export function compareWithLive(live: Record<string, readonly TxRecord[]>, offline: Record<string, readonly TxRecord[]>): Comparison {
  const ports = Object.keys(live).map((p) => comparePort(p, live[p], offline[p] ?? [], { time: false }));
  return { ok: ports.every((p) => p.differing === 0), ports };
}

export function formatLiveComparison(c: Comparison, file: string): string {
  if (c.ok) return `every transmitted frame matches the live run (${c.ports.map((p) => `${p.port}=${p.gotFrames}`).join(' ')})\n`;
  return `${formatComparison(c, { expectedName: `the live run in ${file}`, gotName: 'replay' })}\n`;
}
