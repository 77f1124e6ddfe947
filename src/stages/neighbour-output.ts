/**
 * neighbour-output: resolves each packet's next hop to a MAC and writes its Ethernet header
 * (Linux's neigh_output / neigh_resolve_output, VPP's ip4-rewrite + arp).
 *
 * in:   IPv4 packets with txIf and nextHop set (l3 at the IPv4 header)
 * out:  output — framed for the egress interface (interface-output)
 *       arp    — ARP requests this stage originates (interface-output as well)
 *       error  — packets whose neighbour failed: ICMP host unreachable (3/1) to their senders
 * drop: neighbour table full; a waiting packet pushed out of a full queue (unres_qlen).
 *
 * A miss creates an INCOMPLETE entry, sends a broadcast request and queues the packet;
 * `runTimers` repeats the request every retransmission interval and, after the last one goes
 * unanswered, fails the entry and answers every queued packet with host unreachable. An
 * entry in use after its reachable time goes STALE → DELAY → PROBE (unicast requests), as
 * in Linux, and the packets keep flowing meanwhile. For `arp.failedMs` after a failure, new
 * packets to that neighbour get host unreachable at once; after it, they start over.
 *
 * A packet to the same neighbour as the packet before it in the batch (a burst to one
 * gateway) is framed with that packet's header words, without a table lookup or state check.
 */
import { dropReasons } from '../core/drop-reason.ts';
import { ARP_LEN, ArpOp, writeArpHiLo } from '../wire/arp.ts';
import { ETH_HLEN, EtherType, writeEthernetHiLo } from '../wire/ethernet.ts';
import { NO_PORT } from '../core/frame-pool.ts';
import { Stage } from '../core/stage.ts';
import { NeighState } from '../tables/neighbour-table.ts';
import { formatIpv4 } from '../wire/ipv4-address.ts';
import type { Context } from './context.ts';

const enum Drop {
  TABLE_FULL,
  QUEUE_OVERFLOW,
  POOL_EXHAUSTED,
}

export const ICMP_HOST_UNREACHABLE = (3 << 24) | (1 << 16);

export class NeighbourOutput extends Stage<'output' | 'arp' | 'error'> {
  readonly name = 'neighbour-output';
  readonly nextNames = ['output', 'arp', 'error'] as const;
  readonly dropReasons = dropReasons([
    ['neigh.table-full', 'neighbour table full'],
    ['neigh.queue-overflow', 'waiting packet pushed out of a full arp queue'],
    ['neigh.no-slot', 'no free slot for an arp request'],
  ]);
  override readonly events = ['requestsSent', 'resolutionsFailed'];
  requestsSent = 0;
  resolutionsFailed = 0;

  private readonly fire = (id: number): void => this.onTimer(id);
  private readonly fail = (slot: number): void => {
    this.pool.icmpError[slot] = ICMP_HOST_UNREACHABLE;
    this.to(this.out.error, slot);
  };

  constructor(private readonly ctx: Context) {
    super(ctx.pool);
  }

  protected process(slots: Int32Array, n: number): void {
    const ctx = this.ctx;
    const { pool, neigh } = ctx;
    const now = ctx.nowUs;
    const reachableUs = neigh.timers.reachableUs;
    // Framed packets (and the ARP requests this batch starts, in their place) are kept at the
    // front of the batch, in order, and go to interface-output in one call.
    let k = 0;
    // A burst to one next hop (a gateway) resolves it once: `ready` is the neighbour the
    // previous packet was framed for, with the header words it wrote. Nothing in this loop
    // makes a usable entry unusable (a miss's collection removes only FAILED, NONE and idle
    // STALE entries), and the batch has one `now`; the table's version is compared anyway.
    let ready = -1;
    let readyIf = -1;
    let readyNh = 0;
    let readyVersion = -1;
    let dstHi = 0;
    let dstLo = 0;
    let srcHi = 0;
    let srcLo = 0;
    for (let i = 0; i < n; i++) {
      const slot = slots[i];
      const ifIndex = pool.txIf[slot];
      const nh = pool.nextHop[slot];
      if (ready >= 0 && nh === readyNh && ifIndex === readyIf && readyVersion === neigh.version) {
        this.frame(slot, dstHi, dstLo, srcHi, srcLo);
        slots[k++] = slot;
        continue;
      }
      ready = -1;
      let id = neigh.find(ifIndex, nh);
      if (id >= 0) {
        const state = neigh.state[id];
        if (state === NeighState.REACHABLE) {
          if (now - neigh.confirmedUs[id] <= reachableUs) ready = id;
          else neigh.state[id] = NeighState.STALE;
        }
        if (state === NeighState.PERMANENT || state === NeighState.DELAY || state === NeighState.PROBE) {
          ready = id;
        } else if (neigh.state[id] === NeighState.STALE) {
          neigh.state[id] = NeighState.DELAY;
          neigh.setDeadline(id, now + neigh.timers.delayUs);
          ready = id;
        }
        if (ready >= 0) {
          // Usable: its header words serve this packet and the burst behind it.
          readyIf = ifIndex;
          readyNh = nh;
          readyVersion = neigh.version;
          dstHi = neigh.macHi[id];
          dstLo = neigh.macLo[id];
          srcHi = ctx.ifs.macHi[ifIndex];
          srcLo = ctx.ifs.macLo[ifIndex];
          neigh.usedUs[id] = now;
          this.frame(slot, dstHi, dstLo, srcHi, srcLo);
          slots[k++] = slot;
          continue;
        }
        if (state === NeighState.INCOMPLETE) {
          this.wait(id, slot);
          continue;
        }
        if (state === NeighState.FAILED && now - neigh.failedUs[id] < neigh.timers.failedHoldUs) {
          this.fail(slot);
          continue;
        }
      } else {
        id = neigh.create(ifIndex, nh, now);
        if (id < 0) {
          this.drop(slot, Drop.TABLE_FULL);
          continue;
        }
      }
      // NONE or FAILED: start resolving.
      neigh.state[id] = NeighState.INCOMPLETE;
      neigh.probesSent[id] = 1;
      neigh.setDeadline(id, now + neigh.timers.retransUs);
      // The packet waits, so its place in the batch is free for the request (k <= i).
      const request = this.request(ifIndex, nh, -1, 0, slot);
      if (request >= 0) slots[k++] = request;
      this.wait(id, slot);
    }
    this.toAll(this.out.output, slots, k);
  }

  /** Fires due neighbour timers at the context's current time. */
  runTimers(): void {
    this.ctx.neigh.runDue(this.ctx.nowUs, this.fire);
  }

  private onTimer(id: number): void {
    const neigh = this.ctx.neigh;
    const now = this.ctx.nowUs;
    const state = neigh.state[id];
    const ifIndex = neigh.ifIndexOf(id);
    const ip = neigh.ipOf(id);
    if (state === NeighState.INCOMPLETE || state === NeighState.PROBE) {
      if (neigh.probesSent[id] < neigh.timers.probes) {
        neigh.probesSent[id]++;
        neigh.setDeadline(id, now + neigh.timers.retransUs);
        if (state === NeighState.INCOMPLETE) this.sendRequest(ifIndex, ip, -1, 0);
        else this.sendRequest(ifIndex, ip, neigh.macHi[id], neigh.macLo[id]);
        return;
      }
      neigh.state[id] = NeighState.FAILED;
      neigh.failedUs[id] = now;
      this.resolutionsFailed++;
      neigh.drain(id, this.fail);
      return;
    }
    if (state === NeighState.REACHABLE) {
      // Linux's neigh_timer_handler: still confirmed → wait; unconfirmed but used within
      // the delay → DELAY (probing follows); unconfirmed and idle → STALE.
      const t = neigh.timers;
      if (now - neigh.confirmedUs[id] < t.reachableUs) {
        neigh.setDeadline(id, neigh.confirmedUs[id] + t.reachableUs);
      } else if (now - neigh.usedUs[id] <= t.delayUs) {
        neigh.state[id] = NeighState.DELAY;
        neigh.setDeadline(id, now + t.delayUs);
      } else {
        neigh.state[id] = NeighState.STALE;
      }
      return;
    }
    if (state === NeighState.DELAY) {
      neigh.state[id] = NeighState.PROBE;
      neigh.probesSent[id] = 1;
      neigh.setDeadline(id, now + neigh.timers.retransUs);
      this.sendRequest(ifIndex, ip, neigh.macHi[id], neigh.macLo[id]);
    }
  }

  private wait(id: number, slot: number): void {
    if (this.tracer !== null) this.tracer.note(this.name, slot, `waits for neighbour ${formatIpv4(this.ctx.neigh.ipOf(id))} on ${this.ctx.ifs.names[this.ctx.pool.txIf[slot]]}`);
    const pushedOut = this.ctx.neigh.enqueue(id, slot);
    if (pushedOut >= 0) this.drop(pushedOut, Drop.QUEUE_OVERFLOW);
  }

  /**
   * Writes the Ethernet header in front of the IPv4 header: to the neighbour's MAC (dstHi,
   * dstLo) from the egress interface's (srcHi, srcLo). The caller passes the frame on.
   */
  private frame(slot: number, dstHi: number, dstLo: number, srcHi: number, srcLo: number): void {
    const pool = this.ctx.pool;
    const end = pool.start[slot] + pool.len[slot];
    const s = pool.l3[slot] - ETH_HLEN;
    const dv = pool.dataView;
    dv.setUint16(s, dstHi);
    dv.setInt32(s + 2, dstLo);
    dv.setUint16(s + 6, srcHi);
    dv.setInt32(s + 8, srcLo);
    dv.setUint16(s + 12, EtherType.IPV4);
    pool.start[slot] = s;
    pool.len[slot] = end - s;
    pool.inPort[slot] = NO_PORT;
  }

  /** Originates an ARP request (see `request`) and sends it: a timer's retransmission. */
  private sendRequest(ifIndex: number, ip: number, hi: number, lo: number): void {
    const slot = this.request(ifIndex, ip, hi, lo, -1);
    if (slot >= 0) this.to(this.out.arp, slot);
  }

  /**
   * Builds an ARP request for `ip` on `ifIndex`: broadcast, or unicast to (hi, lo) when
   * hi ≥ 0; returns its slot (traced as a step to `arp` when its caller sends it), or -1
   * when the pool has none. `cause` is the packet that needs it (for the trace), -1 for a timer.
   */
  private request(ifIndex: number, ip: number, hi: number, lo: number, cause: number): number {
    const { pool, ifs } = this.ctx;
    const slot = pool.alloc();
    if (slot < 0) {
      this.countDrop(Drop.POOL_EXHAUSTED);
      return -1;
    }
    const data = pool.data;
    const s = pool.start[slot];
    const myHi = ifs.macHi[ifIndex];
    const myLo = ifs.macLo[ifIndex];
    const broadcast = hi < 0;
    writeEthernetHiLo(data, s, broadcast ? 0xffff : hi, broadcast ? -1 : lo, myHi, myLo, EtherType.ARP);
    const a = s + ETH_HLEN;
    writeArpHiLo(data, a, ArpOp.REQUEST, myHi, myLo, ifs.hasAddress(ifIndex) ? ifs.addr[ifIndex] : 0, 0, 0, ip);
    pool.len[slot] = ETH_HLEN + ARP_LEN;
    pool.l3[slot] = a;
    pool.txIf[slot] = ifIndex;
    if (this.tracer !== null) this.tracer.derived(this.name, cause, slot);
    this.requestsSent++;
    return slot;
  }
}
