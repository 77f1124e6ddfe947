/**
 * Fdb: the forwarding database of every learning bridge (what `bridge fdb` shows).
 *
 * Keyed by (bridge, MAC) with the MAC as high 16 / low 32 bits, valued by the port it was
 * last seen on and when. Entries age out after the bridge's ageingSeconds: lookups treat an
 * aged entry as unknown (so forwarding floods, as Linux does) and `sweep` reclaims them.
 * A station that moves to another port is re-learned at once and counted. The table is
 * bounded; when full and nothing has aged, new stations are not learned (their traffic is
 * flooded) and the refusal is counted, as with Linux's fdb_max_learned.
 *
 * A full table is swept only once an entry can have aged: each sweep notes the earliest time
 * one of the entries it kept could age out (learning only moves entries later), and until
 * then a new station is refused at once. A flood of new source MACs into a full table costs
 * O(1) a frame, not a scan of the table each.
 */
import { KeyIndex } from './key-index.ts';

export interface FdbEntryView {
  bridge: number;
  macHi: number;
  macLo: number;
  port: number;
  ageUs: number;
  isStatic: boolean;
}

export class Fdb {
  private readonly index: KeyIndex;
  readonly port: Int32Array;
  readonly lastSeenUs: Float64Array;
  readonly isStatic: Uint8Array;
  /** Ageing time per bridge index, in µs. */
  private readonly ageingUs: number[] = [];
  learned = 0;
  moves = 0;
  full = 0;
  /** Full sweeps run (one per table scan; `show stats` can tell a flood from ageing). */
  sweeps = 0;
  /** No entry can have aged before this (µs): a full table is not swept again until then. */
  private nextAgeUs = -Infinity;
  /**
   * The table's clock (µs): the dataplane advances it before each dispatch, and `learn` and
   * `lookup` read it, so the packet path never passes a timestamp. A µs timestamp is not a
   * small integer; passed to a call V8 did not inline, it would be boxed on every packet.
   * Control code and tests may pass `nowUs`, which advances the clock first.
   */
  nowUs = 0;

  constructor(capacity = 4096) {
    this.index = new KeyIndex(capacity);
    this.port = new Int32Array(capacity);
    this.lastSeenUs = new Float64Array(capacity);
    this.isStatic = new Uint8Array(capacity);
  }

  setAgeing(bridge: number, seconds: number): void {
    this.ageingUs[bridge] = seconds * 1e6;
    this.nextAgeUs = -Infinity;
  }

  get size(): number {
    return this.index.size;
  }

  /** Learns that (macHi, macLo) lives behind `port` of `bridge` at time `nowUs`. */
  learn(bridge: number, macHi: number, macLo: number, port: number, nowUs?: number): void {
    if (nowUs !== undefined) this.nowUs = nowUs;
    const now = this.nowUs;
    const a = (bridge << 16) | macHi;
    let id = this.index.find(a, macLo);
    if (id >= 0) {
      if (this.isStatic[id]) return;
      if (this.port[id] !== port) {
        this.port[id] = port;
        this.moves++;
      }
      this.lastSeenUs[id] = now;
      return;
    }
    if (this.index.isFull) {
      // Refused at once unless an entry can have aged since the last sweep.
      if (now <= this.nextAgeUs) {
        this.full++;
        return;
      }
      this.sweep(now);
    }
    id = this.index.insertNew(a, macLo);
    if (id < 0) {
      this.full++;
      return;
    }
    this.port[id] = port;
    this.lastSeenUs[id] = now;
    this.isStatic[id] = 0;
    this.learned++;
    // A bridge with a shorter ageing time than the others' may age this one first.
    const ages = now + this.ageingUs[bridge];
    if (ages < this.nextAgeUs) this.nextAgeUs = ages;
  }

  /** Adds an entry that never ages and is never moved by learning. */
  addStatic(bridge: number, macHi: number, macLo: number, port: number): boolean {
    const id = this.index.insert((bridge << 16) | macHi, macLo);
    if (id < 0) return false;
    this.port[id] = port;
    this.isStatic[id] = 1;
    this.lastSeenUs[id] = 0;
    return true;
  }

  /** The port behind (macHi, macLo) in `bridge`, or -1 when unknown or aged out. */
  lookup(bridge: number, macHi: number, macLo: number, nowUs?: number): number {
    if (nowUs !== undefined) this.nowUs = nowUs;
    const id = this.index.find((bridge << 16) | macHi, macLo);
    if (id < 0) return -1;
    if (this.isStatic[id] === 0 && this.nowUs - this.lastSeenUs[id] > this.ageingUs[bridge]) return -1;
    return this.port[id];
  }

  /** Forgets every entry learned on `port` (a port that went down, as Linux flushes). */
  flushPort(port: number): void {
    const idx = this.index;
    for (let id = 0; id < idx.capacity; id++) if (idx.used[id] && this.port[id] === port) idx.remove(id);
  }

  /** Removes aged entries; notes when the earliest of those kept can age. */
  sweep(nowUs: number): number {
    const idx = this.index;
    let removed = 0;
    let next = Infinity;
    for (let id = 0; id < idx.capacity; id++) {
      if (!idx.used[id] || this.isStatic[id]) continue;
      const bridge = (idx.k1[id] >>> 16) & 0xffff;
      const ages = this.lastSeenUs[id] + this.ageingUs[bridge];
      if (nowUs > ages) {
        idx.remove(id);
        removed++;
      } else if (ages < next) {
        next = ages;
      }
    }
    this.nextAgeUs = next;
    this.sweeps++;
    return removed;
  }

  /** Live entries, for display. */
  entries(nowUs: number): FdbEntryView[] {
    const idx = this.index;
    const out: FdbEntryView[] = [];
    for (let id = 0; id < idx.capacity; id++) {
      if (!idx.used[id]) continue;
      const bridge = (idx.k1[id] >>> 16) & 0xffff;
      const ageUs = nowUs - this.lastSeenUs[id];
      if (!this.isStatic[id] && ageUs > this.ageingUs[bridge]) continue;
      out.push({ bridge, macHi: idx.k1[id] & 0xffff, macLo: idx.k2[id] >>> 0, port: this.port[id], ageUs: this.isStatic[id] ? 0 : ageUs, isStatic: this.isStatic[id] === 1 });
    }
    return out;
  }
}
