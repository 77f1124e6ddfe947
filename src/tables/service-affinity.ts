/**
 * ServiceAffinity: `sessionAffinity: ClientIP` — which endpoint a client was last sent to, per
 * Service port, until the Service's timeout passes without a new connection (kube-proxy's
 * `-m recent --rcheck --seconds T --reap` before the random choice and `--set` in the endpoint's
 * chain: the timeout counts from the client's last new connection).
 *
 * Keyed by (client IPv4, service-port id) in a KeyIndex; each entry holds the endpoint id, the
 * endpoint's generation when it was chosen (so an endpoint removed, and its id reused, is not
 * taken for the old one; nor is an entry of a removed Service whose port id was reused: the
 * caller checks the endpoint still belongs to the port) and its deadline on the dataplane clock (µs, the `nowUs` field, set
 * before each batch: no double crosses a call on the packet path).
 *
 * Expiry without scans: `find` treats an entry past its deadline as absent; every `set` also
 * looks at the two oldest entries of a ring (insertion order), removing an expired one and
 * moving one refreshed since to the ring's tail, so dead entries are reclaimed at the rate
 * new ones arrive. When full, the oldest entry gives way (xt_recent, which kube-proxy uses,
 * also forgets its oldest clients: 200 per endpoint by default; here `capacity` for the node).
 */
import { KeyIndex } from './key-index.ts';

export const DEFAULT_AFFINITY_CAPACITY = 65536;
/** Ring entries examined per `set`. */
const SWEEP_STEPS = 2;

export class ServiceAffinity {
  readonly capacity: number;
  private readonly index: KeyIndex;
  private readonly ep: Int32Array;
  private readonly gen: Int32Array;
  private readonly deadline: Float64Array;
  /** Ids in insertion order; every live id is in it once. */
  private readonly ring: Int32Array;
  private head = 0;
  private queued = 0;
  /** The clock (µs), set by the dataplane before each batch. */
  nowUs = 0;
  /** Entries removed because the table was full. */
  evicted = 0;

  constructor(capacity = DEFAULT_AFFINITY_CAPACITY) {
    this.capacity = capacity;
    this.index = new KeyIndex(capacity);
    this.ep = new Int32Array(capacity);
    this.gen = new Int32Array(capacity);
    this.deadline = new Float64Array(capacity);
    this.ring = new Int32Array(capacity);
  }

  get size(): number {
    return this.index.size;
  }

  /** The endpoint `client` was pinned to for service port `sp` (its entry id, or -1: none or expired). */
  find(client: number, sp: number): number {
    const id = this.index.find(client, sp);
    if (id < 0 || this.deadline[id] <= this.nowUs) return -1;
    return id;
  }

  /** The endpoint of entry `id` (from `find`). */
  endpointOf(id: number): number {
    return this.ep[id];
  }

  /** The endpoint generation of entry `id`. */
  generationOf(id: number): number {
    return this.gen[id];
  }

  /** Pins `client` to endpoint `ep` (generation `gen`) for service port `sp`, for `seconds` from now. */
  set(client: number, sp: number, ep: number, gen: number, seconds: number): void {
    this.sweep();
    let id = this.index.find(client, sp);
    if (id < 0) {
      if (this.index.size === this.capacity) this.evictOldest();
      id = this.index.insert(client, sp);
      if (id < 0) return;
      this.ring[(this.head + this.queued) % this.capacity] = id;
      this.queued++;
    }
    this.ep[id] = ep;
    this.gen[id] = gen;
    this.deadline[id] = this.nowUs + seconds * 1e6;
  }

  private sweep(): void {
    for (let k = 0; k < SWEEP_STEPS && this.queued > 0; k++) {
      const id = this.ring[this.head];
      this.head = (this.head + 1) % this.capacity;
      this.queued--;
      if (this.deadline[id] <= this.nowUs) {
        this.index.remove(id);
      } else {
        // Refreshed since it was queued: to the tail.
        this.ring[(this.head + this.queued) % this.capacity] = id;
        this.queued++;
      }
    }
  }

  private evictOldest(): void {
    const id = this.ring[this.head];
    this.head = (this.head + 1) % this.capacity;
    this.queued--;
    this.index.remove(id);
    this.evicted++;
  }
}
