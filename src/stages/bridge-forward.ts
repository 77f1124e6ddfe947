/**
 * bridge-forward: the learning bridge (Linux's br_handle_frame / br_forward, cni0 on a node).
 *
 * in:   frames from a member port (inPort set), or from the router leaving through the
 *       bridge's own interface (inPort = NO_PORT, txIf = the bridge's router interface)
 * out:  tx     — one copy per destination port (outPort set); flood copies share the
 *                frame's bytes, so they must only be read from here on
 *       ip4    — the same, for untagged IPv4 frames with a unicast destination MAC from a
 *                member port while connection tracking is on (`ctx.conntrack` set): the
 *                bridge-ip4 hook, as br_netfilter runs iptables on bridged IPv4 (l3 set).
 *                Its handlers may rewrite them, so flood copies sent there have bytes of
 *                their own
 *       router — frames for the bridge's router interface: unicast to its MAC, and a copy of
 *                every broadcast/multicast frame (rxIf set), with bytes of its own
 * drop: invalid source MAC (multicast or zero, as Linux drops), a known destination behind the
 *       ingress port itself, a bridge with nowhere to send, no free slot for a flood copy,
 *       IEEE 802.1D link-local group addresses (01:80:c2:00:00:00-0f: STP, LLDP, 802.1X).
 *
 * Learning: the source MAC of every frame from a port is learned on that port (station moves
 * re-learn at once). Forwarding: known unicast to its port; unknown unicast, broadcast and
 * multicast flooded to every other member port that is up, never back out of the ingress.
 */
import { dropReasons } from '../core/drop-reason.ts';
import { NO_PORT } from '../core/frame-pool.ts';
import { Stage } from '../core/stage.ts';
import type { Context } from './context.ts';

const enum Drop {
  BAD_SOURCE,
  SAME_PORT,
  NO_DESTINATION,
  POOL_EXHAUSTED,
  LINK_LOCAL,
}

export class BridgeForward extends Stage<'tx' | 'ip4' | 'router'> {
  readonly name = 'bridge-forward';
  readonly nextNames = ['tx', 'ip4', 'router'] as const;
  readonly dropReasons = dropReasons([
    ['bridge.invalid-source', 'invalid source mac (multicast or zero)'],
    ['bridge.no-reflect', 'destination is behind the ingress port'],
    ['bridge.no-destination', 'no port to forward to'],
    ['bridge.no-slot', 'no free slot for a flood copy'],
    ['bridge.link-local', 'link-local group address (01:80:c2:00:00:0x) is not forwarded'],
  ]);
  override readonly events = ['flooded'];
  /** Frames flooded (broadcast, multicast, unknown unicast). */
  flooded = 0;

  constructor(private readonly ctx: Context) {
    super(ctx.pool);
  }

  protected process(slots: Int32Array, n: number): void {
    const { pool, ports, ifs, fdb } = this.ctx;
    // MACs are read as a 16-bit high part and a 32-bit (int32) low part, as the FDB keys them.
    const view = pool.dataView;
    const tx = this.out.tx;
    const hookIp4 = this.ctx.conntrack !== null;
    // Frames for the router (and the router's copies of floods, in their frame's place) are
    // kept at the front of the batch, in order, and go to l3-input in one call. Member ports
    // get theirs one by one: a flood's copies and unicast frames share port-output's queue.
    let k = 0;
    for (let i = 0; i < n; i++) {
      const slot = slots[i];
      const s = pool.start[slot];
      const inPort = pool.inPort[slot];
      const fromRouter = inPort === NO_PORT;
      const b = fromRouter ? ifs.target[pool.txIf[slot]] : ports.bridgeOf[inPort];
      const bridge = ports.bridges[b];
      if (!fromRouter) {
        const srcHi = view.getUint16(s + 6);
        const srcLo = view.getInt32(s + 8);
        if ((srcHi & 0x0100) !== 0 || (srcHi === 0 && srcLo === 0)) {
          this.drop(slot, Drop.BAD_SOURCE);
          continue;
        }
        fdb.learn(b, srcHi, srcLo, inPort);
      }
      const dstHi = view.getUint16(s);
      const dstLo = view.getInt32(s + 2);
      if ((dstHi & 0x0100) !== 0) {
        // IEEE 802.1D reserved addresses (STP, LLDP, 802.1X, pause) stay on their link, as
        // with Linux's default group_fwd_mask of 0.
        if (dstHi === 0x0180 && (dstLo & 0xfffffff0) === (0xc2000000 | 0)) {
          this.drop(slot, Drop.LINK_LOCAL);
          continue;
        }
        const copy = this.flood(slot, bridge.members, inPort, !fromRouter ? bridge.ifIndex : -1);
        if (copy >= 0) slots[k++] = copy;
        continue;
      }
      const ifIndex = bridge.ifIndex;
      if (!fromRouter && ifIndex >= 0 && dstHi === ifs.macHi[ifIndex] && dstLo === ifs.macLo[ifIndex]) {
        pool.rxIf[slot] = ifIndex;
        slots[k++] = slot;
        continue;
      }
      const out = fdb.lookup(b, dstHi, dstLo);
      if (out < 0) {
        this.flood(slot, bridge.members, inPort, -1);
        continue;
      }
      if (out === inPort) {
        this.drop(slot, Drop.SAME_PORT);
        continue;
      }
      pool.outPort[slot] = out;
      // Bridged IPv4 between two member ports passes the bridge's IPv4 hook (conntrack on only).
      if (hookIp4 && !fromRouter && this.isIp4(slot)) this.to(this.out.ip4, slot);
      else this.to(tx, slot);
    }
    this.toAll(this.out.router, slots, k);
  }

  /** An untagged IPv4 frame (l3 set to its header when so): what the bridge-ip4 hook takes. */
  private isIp4(slot: number): boolean {
    const pool = this.pool;
    const s = pool.start[slot];
    if (pool.data[s + 12] !== 0x08 || pool.data[s + 13] !== 0x00) return false;
    pool.l3[slot] = s + 14;
    return true;
  }

  /**
   * Sends a copy to every member but `inPort` (and to the router interface when `routerIf` ≥ 0).
   * Member copies share the frame's bytes (FramePool.share): port-output only reads them, so
   * a 64 KiB super-frame is not copied once per port. The router may rewrite what it gets (an
   * ARP request becomes the reply in place), so its copy has bytes of its own; so does each
   * copy of unknown unicast IPv4 from a member port while conntrack is on, which goes through
   * the bridge's IPv4 hook, where NAT may rewrite it. Returns the router's frame (rxIf set),
   * which the caller passes on, or -1.
   */
  private flood(slot: number, members: Int32Array, inPort: number, routerIf: number): number {
    const pool = this.pool;
    const up = this.ctx.ports.up;
    const ip4 = this.ctx.conntrack !== null && inPort !== NO_PORT && (pool.data[pool.start[slot]] & 1) === 0 && this.isIp4(slot);
    this.flooded++;
    // Count member targets first so the last one can take the original slot instead of a copy.
    let targets = 0;
    for (let m = 0; m < members.length; m++) if (members[m] !== inPort && up[members[m]]) targets++;
    if (targets === 0 && routerIf < 0) {
      this.drop(slot, Drop.NO_DESTINATION);
      return -1;
    }
    let own = -1;
    if (routerIf >= 0) {
      own = slot;
      if (targets > 0) {
        own = pool.clone(slot);
        if (own < 0) this.countDrop(Drop.POOL_EXHAUSTED);
        else if (this.tracer !== null) this.tracer.derived(this.name, slot, own);
      }
      if (own >= 0) pool.rxIf[own] = routerIf;
    }
    for (let m = 0; m < members.length; m++) {
      const p = members[m];
      if (p === inPort || !up[p]) continue;
      let copy = slot;
      if (--targets > 0) {
        copy = ip4 ? pool.clone(slot) : pool.share(slot);
        if (copy < 0) {
          this.countDrop(Drop.POOL_EXHAUSTED);
          continue;
        }
        if (this.tracer !== null) this.tracer.derived(this.name, slot, copy);
      }
      pool.outPort[copy] = p;
      this.to(ip4 ? this.out.ip4 : this.out.tx, copy);
    }
    return own;
  }
}
