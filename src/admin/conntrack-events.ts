/**
 * The conntrack event stream (`conntrack -E`): NEW, UPDATE and DESTROY of entries, fanned
 * out to every reader of `/v1/conntrack/events` on the admin socket.
 *
 * Costs nothing when nobody listens: the table's `listener` is null until the first reader
 * arrives and again once the last one leaves. While someone listens, the table's calls
 * (onNew/onUpdate/onDestroy, on the packet path) only copy integers into a ring of typed
 * arrays; objects and text are made later, off the packet path, by a flush that runs on the
 * next turn of the event loop (setImmediate) and formats at most CHUNK_MS of events per
 * turn.
 *
 * What an event shows, and when it is read:
 *   NEW      the entry at the end of the batch that created it (the dataplane's afterBatch
 *            hook): its reply tuple may change until its first packet has left through the
 *            NAT stages, as Linux reports a new entry once it is confirmed, after
 *            POSTROUTING. The state change of that first packet (a SYN's SYN_SENT) is part of
 *            the NEW event, not an UPDATE of its own.
 *   UPDATE   status and TCP state as they were at the event; tuples, counters and timeout
 *            at the end of the batch.
 *   DESTROY  the entry as it was when it died (its status is cleared right after).
 * An entry destroyed before the end of the batch that created or updated it has those
 * events read at its DESTROY, while it is still whole; so an id that dies and is reused
 * before a flush is never read for the wrong entry.
 *
 * Limits. The ring holds RING_SIZE events; events that find it full are counted and each
 * reader is told how many it missed (`{"event":"LOST","count":N}`, as `conntrack -E` warns
 * of ENOBUFS). A reader whose socket has more than MAX_PENDING_BYTES unsent misses events
 * the same way instead of growing the server's memory.
 */
import type { ServerResponse } from 'node:http';
import type { Conntrack } from '../tables/conntrack.ts';
import type { ConntrackListener } from '../tables/conntrack-store.ts';
import type { ConntrackFilter } from '../tables/conntrack-views.ts';
import { conntrackJson, readConntrackTuples, type ConntrackEventJson, type ConntrackEventType, type ConntrackLostJson } from './conntrack-json.ts';

/** The dataplane's end-of-batch hook (Dataplane.afterBatch). */
export interface BatchHook {
  afterBatch: (() => void) | null;
}

export interface EventReaderOptions {
  filter: ConntrackFilter;
  /** End the stream after this many events (Infinity: until the reader goes away). */
  count: number;
  /** End the stream after this long, in seconds (Infinity: never). */
  seconds: number;
}

const RING_SIZE = 1 << 15;
const CHUNK_MS = 2;
const MAX_PENDING_BYTES = 4 << 20;

const NEW = 0;
const UPDATE = 1;
const DESTROY = 2;
const TYPE_NAMES: ConntrackEventType[] = ['NEW', 'UPDATE', 'DESTROY'];

interface Reader {
  res: ServerResponse;
  filter: ConntrackFilter;
  remaining: number;
  /** Events this reader missed and has not been told of. */
  lost: number;
  timer: NodeJS.Timeout | undefined;
  lines: string[];
  /** Waiting for the socket to drain, to tell of lost events even if no other event comes. */
  draining: boolean;
}

const hubs = new WeakMap<Conntrack, ConntrackEventHub>();

export class ConntrackEventHub implements ConntrackListener {
  private readonly readers = new Set<Reader>();
  // The ring, one record per event (sequence number s at slot s & mask).
  private mask = -1;
  private kind = new Uint8Array(0);
  private ids = new Int32Array(0);
  private protos = new Uint8Array(0);
  /** 1 once tuples, counters and timeout are read. */
  private done = new Uint8Array(0);
  /** status | TCP state << 8. */
  private flags = new Int32Array(0);
  private times = new Float64Array(0);
  private deadlines = new Float64Array(0);
  /** 8 per record: original then reply tuple (src, dst, sport, dport). */
  private tuples = new Int32Array(0);
  /** 4 per record: packets orig, reply; bytes orig, reply. */
  private counters = new Float64Array(0);
  /** Next sequence number to write, first not yet settled, first not yet sent. */
  private head = 0;
  private settled = 0;
  private tail = 0;
  /** Records between `settled` and `head` still waiting for the end of their batch. */
  private pending = 0;
  /** Events that found the ring full since the last flush. */
  private ringLost = 0;
  /** The NEW recorded by the table's previous call (its first packet's UPDATE folds into it), or -1. */
  private lastNew = -1;
  private scheduled = false;
  private readonly onBatch = (): void => this.settle();
  private readonly flushSoon = (): void => this.flush();

  constructor(
    private readonly ct: Conntrack,
    private readonly dp: BatchHook,
  ) {}

  /** The hub of `ct` (one per table, whoever asks). */
  static of(ct: Conntrack, dp: BatchHook): ConntrackEventHub {
    let hub = hubs.get(ct);
    if (hub === undefined) {
      hub = new ConntrackEventHub(ct, dp);
      hubs.set(ct, hub);
    }
    return hub;
  }

  get readerCount(): number {
    return this.readers.size;
  }

  /**
   * Streams events to `res` (status 200, NDJSON) until the count or the time is reached or
   * the reader goes away. Throws, before answering, when something else holds the table's
   * listener or the dataplane's batch hook.
   */
  subscribe(res: ServerResponse, opts: EventReaderOptions): void {
    if (this.readers.size === 0) this.attach();
    const reader: Reader = { res, filter: opts.filter, remaining: opts.count, lost: 0, timer: undefined, lines: [], draining: false };
    this.readers.add(reader);
    res.writeHead(200, { 'content-type': 'application/x-ndjson' });
    res.flushHeaders();
    res.once('close', () => this.unsubscribe(reader));
    if (Number.isFinite(opts.seconds)) reader.timer = setTimeout(() => this.finish(reader), opts.seconds * 1000);
  }

  // ---------------------------------------------------------------------------------------
  // ConntrackListener: on the packet path, integers only

  onNew(id: number): void {
    this.lastNew = -1;
    const s = this.reserve();
    if (s < 0) return;
    const i = s & this.mask;
    this.kind[i] = NEW;
    this.ids[i] = id;
    this.done[i] = 0;
    this.pending++;
    this.times[i] = this.ct.nowUs;
    this.lastNew = s;
  }

  onUpdate(id: number): void {
    const folded = this.lastNew >= 0 && this.ids[this.lastNew & this.mask] === id;
    this.lastNew = -1;
    if (folded) return;
    const s = this.reserve();
    if (s < 0) return;
    const i = s & this.mask;
    this.kind[i] = UPDATE;
    this.ids[i] = id;
    this.done[i] = 0;
    this.pending++;
    this.times[i] = this.ct.nowUs;
    this.readState(i, id);
  }

  onDestroy(id: number): void {
    this.lastNew = -1;
    // Events of this entry still waiting for the end of their batch are read now, while it is whole.
    if (this.pending > 0) {
      for (let s = this.settled; s < this.head; s++) {
        const i = s & this.mask;
        if (this.done[i] === 0 && this.ids[i] === id) {
          this.settleRecord(i);
          this.pending--;
        }
      }
    }
    const s = this.reserve();
    if (s >= 0) {
      const i = s & this.mask;
      this.kind[i] = DESTROY;
      this.ids[i] = id;
      this.times[i] = this.ct.nowUs;
      this.readState(i, id);
      this.settleRecord(i);
    }
    // Nothing waits for the end of the batch: the scan above starts past everything so far.
    if (this.pending === 0) this.settled = this.head;
  }

  private reserve(): number {
    if (this.head - this.tail > this.mask) {
      this.ringLost++;
      return -1;
    }
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flushSoon);
    }
    return this.head++;
  }

  private readState(i: number, id: number): void {
    const ct = this.ct;
    this.flags[i] = ct.statusOf(id) | (ct.tcpStateOf(id) << 8);
  }

  /** Reads what waited for the end of the batch: tuples, counters, deadline (and a NEW's state). */
  private settleRecord(i: number): void {
    const ct = this.ct;
    const id = this.ids[i];
    if (this.kind[i] === NEW) this.readState(i, id);
    this.protos[i] = ct.protoOf(id);
    readConntrackTuples(ct, id, this.tuples, i * 8, this.counters, i * 4);
    this.deadlines[i] = ct.deadlineOf(id);
    this.done[i] = 1;
  }

  /** End of a batch (and before each flush): every event so far becomes readable. */
  private settle(): void {
    this.lastNew = -1;
    for (let s = this.settled; s < this.head; s++) {
      const i = s & this.mask;
      if (this.done[i] === 0) this.settleRecord(i);
    }
    this.pending = 0;
    this.settled = this.head;
  }

  // ---------------------------------------------------------------------------------------
  // Off the packet path

  private attach(): void {
    const ct = this.ct;
    if (ct.listener !== null && ct.listener !== this) throw new Error('the conntrack table already has another listener');
    if (this.dp.afterBatch !== null && this.dp.afterBatch !== this.onBatch) throw new Error("the dataplane's batch hook is taken");
    const n = RING_SIZE;
    this.mask = n - 1;
    this.kind = new Uint8Array(n);
    this.ids = new Int32Array(n);
    this.protos = new Uint8Array(n);
    this.done = new Uint8Array(n);
    this.flags = new Int32Array(n);
    this.times = new Float64Array(n);
    this.deadlines = new Float64Array(n);
    this.tuples = new Int32Array(n * 8);
    this.counters = new Float64Array(n * 4);
    this.head = this.settled = this.tail = this.pending = 0;
    this.ringLost = 0;
    this.lastNew = -1;
    ct.listener = this;
    this.dp.afterBatch = this.onBatch;
  }

  private detach(): void {
    if (this.ct.listener === this) this.ct.listener = null;
    if (this.dp.afterBatch === this.onBatch) this.dp.afterBatch = null;
    this.mask = -1;
    this.kind = new Uint8Array(0);
    this.ids = new Int32Array(0);
    this.protos = new Uint8Array(0);
    this.done = new Uint8Array(0);
    this.flags = new Int32Array(0);
    this.times = new Float64Array(0);
    this.deadlines = new Float64Array(0);
    this.tuples = new Int32Array(0);
    this.counters = new Float64Array(0);
    this.head = this.settled = this.tail = this.pending = 0;
  }

  private unsubscribe(reader: Reader): void {
    if (!this.readers.delete(reader)) return;
    clearTimeout(reader.timer);
    if (this.readers.size === 0) this.detach();
  }

  /** Ends a reader's stream (its count or time is reached). */
  private finish(reader: Reader): void {
    this.unsubscribe(reader);
    if (!reader.res.writableEnded) reader.res.end();
  }

  private eventJson(i: number): ConntrackEventJson {
    const kind = this.kind[i];
    const f = this.flags[i];
    const time = this.times[i];
    const entry = conntrackJson({
      id: this.ids[i],
      proto: this.protos[i],
      status: f & 0xff,
      tcpState: (f >> 8) & 0xff,
      timeout: kind === DESTROY ? null : Math.max(0, Math.floor((this.deadlines[i] - time) / 1e6)),
      tuples: this.tuples.subarray(i * 8, i * 8 + 8),
      counters: this.counters.subarray(i * 4, i * 4 + 4),
    });
    return { event: TYPE_NAMES[kind], time: time / 1e6, ...entry };
  }

  private matches(r: Reader, i: number): boolean {
    const f = r.filter;
    if (f.proto !== undefined && this.protos[i] !== f.proto) return false;
    if (f.src !== undefined && this.tuples[i * 8] !== (f.src | 0)) return false;
    if (f.dst !== undefined && this.tuples[i * 8 + 1] !== (f.dst | 0)) return false;
    return true;
  }

  /** Formats settled events (CHUNK_MS at most) and writes each reader its share. */
  private flush(): void {
    this.scheduled = false;
    if (this.readers.size === 0) return;
    this.settle();
    const readers = [...this.readers];
    if (this.ringLost > 0) {
      for (const r of readers) r.lost += this.ringLost;
      this.ringLost = 0;
    }
    const t0 = performance.now();
    let n = 0;
    while (this.tail < this.settled) {
      const i = this.tail & this.mask;
      this.tail++;
      let line: string | null = null;
      for (const r of readers) {
        if (r.remaining <= 0 || !this.matches(r, i)) continue;
        line ??= JSON.stringify(this.eventJson(i));
        r.lines.push(line);
        r.remaining--;
      }
      if ((++n & 63) === 0 && performance.now() - t0 >= CHUNK_MS) break;
    }
    for (const r of readers) this.send(r);
    if (this.tail < this.head && !this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flushSoon);
    }
  }

  private send(r: Reader): void {
    const res = r.res;
    const lines = r.lines;
    r.lines = [];
    if (res.writableLength > MAX_PENDING_BYTES) {
      r.lost += lines.length;
      if (!r.draining) {
        r.draining = true;
        res.once('drain', () => {
          r.draining = false;
          if (this.readers.has(r)) this.send(r);
        });
      }
    } else if (lines.length > 0 || r.lost > 0) {
      if (r.lost > 0) {
        const lost: ConntrackLostJson = { event: 'LOST', count: r.lost };
        lines.unshift(JSON.stringify(lost));
        r.lost = 0;
      }
      res.write(lines.join('\n') + '\n');
    }
    if (r.remaining <= 0) this.finish(r);
  }
}
