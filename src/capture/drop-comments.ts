/**
 * DropComments: the comment a dropped frame is recorded with (`--capture-drops`, the `drop`
 * stream): `<stage>: <reason id> (<reason text>)`, e.g. `ip4-forward: ip4.ttl-expired (ttl
 * expired in transit (replaced by icmp time exceeded))`, which Wireshark shows as
 * frame.comment. Encoded once per stage and reason, so recording a drop allocates nothing.
 */
import type { DropReason } from '../core/drop-reason.ts';

export class DropComments {
  private readonly byReason = new Map<DropReason, Map<string, Buffer>>();

  /** The UTF-8 comment for a frame `stage` dropped for `reason`. */
  of(stage: string, reason: DropReason): Buffer {
    let byStage = this.byReason.get(reason);
    if (byStage === undefined) this.byReason.set(reason, (byStage = new Map()));
    let comment = byStage.get(stage);
    if (comment === undefined) byStage.set(stage, (comment = Buffer.from(`${stage}: ${reason.id} (${reason.text})`, 'utf8')));
    return comment;
  }
}
