/**
 * forward-invalid: drops forwarded packets whose conntrack state is INVALID, as kube-proxy's
 * `-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP` does in the FORWARD chain (an ACK
 * that belongs to no flow, a segment the TCP state table rejects, an ICMP error about nothing
 * tracked). Registered at postrouting, where it passes packets the router originates (inPort
 * NO_PORT: Linux's OUTPUT chain has no such rule), and at bridge-ip4, whose frames are all
 * forwarded (br_netfilter runs the FORWARD chain for bridged IPv4). Packets addressed to the
 * router never reach it: an INVALID packet to the router is answered as usual.
 *
 * Priority 0, Linux's filter table: after conntrack and DNAT, before SNAT.
 *
 * drop: forwarded packets with ctstate INVALID.
 */
import { dropReasons } from '../core/drop-reason.ts';
import { CtState, NO_PORT } from '../core/frame-meta.ts';
import type { FramePool } from '../core/frame-pool.ts';
import type { HookHandler } from '../core/hook.ts';

export class ForwardInvalid implements HookHandler {
  readonly name = 'filter';
  readonly priority = 0;
  readonly dropReasons = dropReasons([
    ['conntrack.invalid', 'forwarded packet with ctstate INVALID'],
  ]);
  /** Frames dropped. */
  dropped = 0;

  constructor(private readonly pool: FramePool) {}

  process(slots: Int32Array, n: number, verdicts: Int32Array): number {
    const pool = this.pool;
    let refused = 0;
    for (let i = 0; i < n; i++) {
      const slot = slots[i];
      if (pool.ctState[slot] === CtState.INVALID && pool.inPort[slot] !== NO_PORT) {
        verdicts[i] = 0;
        refused++;
      }
    }
    this.dropped += refused;
    return refused;
  }
}
