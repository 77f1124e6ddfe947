/**
 * Prints stage counters the way `show stats` does: one line per stage, drops indented below.
 */
export function formatStats(stages: Record<string, { packets: number; drops: Record<string, number> }>): string {
  const lines: string[] = [];
  const width = Math.max(...Object.keys(stages).map((k) => k.length));
  for (const [name, c] of Object.entries(stages)) {
    lines.push(`${name.padEnd(width)}  ${String(c.packets).padStart(12)} packets`);
    for (const [reason, n] of Object.entries(c.drops)) lines.push(`${''.padEnd(width)}  ${String(n).padStart(12)} dropped: ${reason}`);
  }
  return lines.join('\n') + '\n';
}
