/**
 * A live run's capture as replay input: the pcapng that `run --capture` writes has one
 * interface per port (if_name = the port's name) and each packet's direction in its flags
 * (capture/port-capture.ts). Inbound packets are what the ports received: replayed, each on
 * its port at its timestamp. Outbound packets are what the live dataplane transmitted: kept
 * per port, to compare with what the offline run transmits (`replay --expect-capture`).
 *
 * Records are taken in file order, which is the order the live dataplane saw them; their
 * timestamps come from one monotonic clock, so sorting by time (stable) keeps that order.
 * Records without a direction or on a link that is not Ethernet are skipped and counted, and
 * so are the dropped frames of `--capture-drops` (an interface named `drop` that is not a
 * port). A record cut by `--snaplen` cannot be replayed: the file is refused, naming it, and so
 * is a capture made with TCP segmentation offload on (its ports' interfaces say so): the
 * super-frames it holds lack the virtio-net header it takes to cut them as the live run did.
 * `settleAfter` is how long the live run was seen after its last received frame (to its last
 * transmitted one): the default settle of a replay of it, so the timers that fired live
 * before the capture ended fire offline too, and no later ones.
 */
import { readCaptureSync } from '../pcap/reader.ts';
import { PacketDirection } from '../pcap/record.ts';
import { OFFLOAD_DESCRIPTION } from '../capture/port-capture.ts';
import type { TxRecord } from '../ports/replay-port.ts';
import type { InputFrame } from './replay.ts';

/** The interface `run --capture-drops` records dropped frames on (capture/port-capture.ts). */
const DROP_INTERFACE = 'drop';

export interface CaptureReplayInput {
  /** Received frames, in file order. */
  rx: InputFrame[];
  /** Per port named in the file: what the live run transmitted, in order. */
  tx: Record<string, TxRecord[]>;
  /** Records skipped: no direction, no interface name, not Ethernet, or on `drop`. */
  skipped: number;
  /** Time of the last record (µs): the live run was seen until then. */
  endUs: number;
}

/**
 * Reads a `run --capture` pcapng. `ports` are the config's port names: an interface named
 * otherwise is an error (the capture is of another node), as is a file with no inbound packet
 * direction at all (not a `run --capture` file).
 */
export function readCaptureInput(file: string, ports: readonly string[], opts: { allowTruncatedTail?: boolean } = {}): CaptureReplayInput {
  // A capture whose writer was killed may end in a cut record: read up to it, as Wireshark does.
  const cap = readCaptureSync(file, { allowTruncatedTail: opts.allowTruncatedTail ?? true });
  // --capture-drops: the dropped frames' interface, unless a port has that name.
  const dropIf = ports.includes(DROP_INTERFACE) ? undefined : DROP_INTERFACE;
  const names = cap.interfaces.map((i) => (i.name === dropIf ? undefined : i.name));
  for (const n of names) {
    if (n !== undefined && !ports.includes(n)) {
      throw new Error(`${file}: interface "${n}" is not a port of this config (ports: ${ports.join(', ')})`);
    }
  }
  if (cap.interfaces.some((i, k) => names[k] !== undefined && i.description === OFFLOAD_DESCRIPTION)) {
    throw new Error(`${file}: recorded with TCP segmentation offload on (super-frames, without what it takes to cut them): replay needs a capture made with run --no-offload`);
  }
  const rx: InputFrame[] = [];
  const tx: Record<string, TxRecord[]> = {};
  for (const n of names) if (n !== undefined) tx[n] = [];
  let skipped = 0;
  let directed = 0;
  let k = 0;
  let endUs = 0;
  for (const r of cap.records()) {
    k++;
    endUs = Math.max(endUs, r.tsSec * 1e6 + Math.floor(r.tsNsec / 1000));
    const iface = cap.interfaces[r.interfaceId];
    const port = names[r.interfaceId];
    const dir = (r.flags ?? 0) & 3;
    if (port === undefined || iface.linkType !== 1 || dir === PacketDirection.UNKNOWN) {
      skipped++;
      continue;
    }
    if (r.data.length < r.origLen) {
      throw new Error(`${file} record ${k}: cut to ${r.data.length} of its ${r.origLen} bytes (a capture with --snaplen): replay needs whole frames`);
    }
    directed++;
    const tsUs = r.tsSec * 1e6 + Math.floor(r.tsNsec / 1000);
    if (dir === PacketDirection.INBOUND) rx.push({ port, tsUs, bytes: Buffer.from(r.data), origin: `${file} record ${k}` });
    else tx[port].push({ tsUs, bytes: Buffer.from(r.data) });
  }
  if (directed === 0 && cap.count > 0) {
    throw new Error(`${file}: no packet has a direction (inbound/outbound): not a capture written by nodeplane run --capture`);
  }
  return { rx, tx, skipped, endUs };
}

/** Seconds from the last received frame to the end of the capture (0 without received frames). */
export function settleAfter(input: CaptureReplayInput): number {
  if (input.rx.length === 0) return 0;
  const lastRx = input.rx.reduce((m, f) => Math.max(m, f.tsUs), 0);
  return Math.max(0, input.endUs - lastRx) / 1e6;
}
