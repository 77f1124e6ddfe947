/**
 * Drop reasons: why a stage (or a hook handler) frees a frame, each a short stable identifier
 * with its text beside it.
 *
 * The identifier is what `show stats`, `trace`, capture drop comments and metrics key on, and
 * what tests assert: `<area>.<what>` in lower case with dashes (`ip4.ttl-expired`,
 * `bridge.no-reflect`, `conntrack.table-full`). It never changes once released; the text may
 * be reworded. A stage declares its reasons in one place, in the order of its reason codes:
 *
 *   readonly dropReasons = dropReasons([
 *     ['ip4.truncated', 'truncated ipv4 header'],
 *     ...
 *   ]);
 *
 * Identifiers are unique within a stage; two stages may share one for the same cause seen at
 * two places (a port that is down, on receive and on transmit, are told apart by the stage).
 */

export interface DropReason {
  /** Stable identifier: `area.what`. */
  readonly id: string;
  /** One line for people. */
  readonly text: string;
}

const ID = /^[a-z][a-z0-9]*(?:-[a-z0-9]+)*(?:\.[a-z0-9]+(?:-[a-z0-9]+)*)+$/;

/** True when `id` has the form of a drop reason identifier. */
export function isDropReasonId(id: string): boolean {
  return ID.test(id);
}

/** Builds a stage's reason list from [id, text] pairs, checking form and uniqueness. */
export function dropReasons(pairs: readonly (readonly [string, string])[]): readonly DropReason[] {
  const out = pairs.map(([id, text]) => ({ id, text }));
  checkDropReasons(out, 'drop reasons');
  return out;
}

/** Throws, naming `where`, when an identifier is malformed or used twice in `list`. */
export function checkDropReasons(list: readonly DropReason[], where: string): void {
  const seen = new Set<string>();
  for (const r of list) {
    if (!isDropReasonId(r.id)) throw new Error(`${where}: drop reason id '${r.id}' is not of the form area.what`);
    if (seen.has(r.id)) throw new Error(`${where}: drop reason id '${r.id}' is declared twice`);
    seen.add(r.id);
  }
}

/** Why frames still queued when a dispatch reached its round limit were dropped (graph.ts). */
export const ROUND_LIMIT: DropReason = { id: 'graph.round-limit', text: 'dispatch round limit reached (a path that loops)' };
