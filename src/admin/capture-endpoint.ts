/**
 * Live captures over the admin socket, for `nodeplane extcap` (Wireshark) and anyone else:
 *
 *   GET /v1/capture?port=NAME[&snaplen=N][&filter=EXPR]
 *   GET /v1/capture?drops=1[&snaplen=N][&filter=EXPR]
 *     → 200, application/x-pcapng: a pcapng stream of what port NAME receives (inbound) and
 *       transmits (outbound), from now until the client goes away; with drops=1, of the
 *       frames the stages drop instead (interface `drop`), each with its stage and reason id
 *       as comment.
 *       snaplen: bytes kept of each frame (1..262144, default 262144); filter: tcpdump syntax,
 *       compiled by libpcap here (400 with libpcap's message when it refuses it).
 *     → 400 for an unknown port or a bad snaplen or filter; 409 when the dataplane has no
 *       capture taps (the server was not given any).
 *
 * Each stream is a CaptureStream attached through the run's CaptureTaps while its response is
 * open; a reader that falls behind by more than the stream's limit loses whole batches,
 * counted (`show ports` lists every open stream with its counts), and never slows
 * forwarding. Closing the server (nodeplane stopping) ends the streams, and removing a port
 * (`nodeplane port del`) ends the port's.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { BpfFilter } from '../capture/bpf-filter.ts';
import type { CaptureTaps } from '../capture/capture-taps.ts';
import { CaptureStream } from '../capture/capture-stream.ts';
import type { Dataplane } from '../dataplane/dataplane.ts';
import { sendJson as send } from './reply.ts';

export const CAPTURE_PATH = '/v1/capture';
/** The interface name of the stream of dropped frames. */
const DROP_STREAM = 'drop';
const MAX_SNAPLEN = 262144;

/** An open stream, for `show ports`. */
export interface CaptureStreamStatus {
  port: string;
  filter: string | null;
  snaplen: number;
  /** Records sent. */
  packets: number;
  /** Records not sent because the reader was too slow. */
  dropped: number;
}

/** The open streams of one admin server. */
export class CaptureStreams {
  private readonly open = new Map<CaptureStream, Omit<CaptureStreamStatus, 'packets' | 'dropped'>>();

  status(): CaptureStreamStatus[] {
    return [...this.open].map(([s, info]) => ({ ...info, packets: s.packets, dropped: s.dropped }));
  }

  /** Serves one GET /v1/capture. */
  handle(dp: Dataplane, taps: CaptureTaps | undefined, req: IncomingMessage, res: ServerResponse, url: URL): void {
    if (req.method !== 'GET') {
      res.setHeader('allow', 'GET');
      send(res, 405, { error: `method ${req.method} not allowed on ${CAPTURE_PATH}` });
      return;
    }
    if (taps === undefined) {
      send(res, 409, { error: 'this dataplane has no capture taps (live captures need nodeplane run)' });
      return;
    }
    const names = dp.ctx.ports.names;
    const drops = url.searchParams.get('drops') === '1';
    const name = drops ? DROP_STREAM : (url.searchParams.get('port') ?? '');
    const port = drops ? 'drop' : names.indexOf(name);
    if (port === -1) {
      send(res, 400, { error: `capture: unknown port "${name}" (ports: ${names.join(', ')}; drops=1 for the dropped frames)` });
      return;
    }
    const snaplenText = url.searchParams.get('snaplen');
    const snaplen = snaplenText === null ? MAX_SNAPLEN : Number(snaplenText);
    if (!Number.isInteger(snaplen) || snaplen < 1 || snaplen > MAX_SNAPLEN) {
      send(res, 400, { error: `capture: snaplen must be a whole number in 1..${MAX_SNAPLEN}, got "${snaplenText}"` });
      return;
    }
    const expression = url.searchParams.get('filter') ?? '';
    let filter: BpfFilter | null = null;
    if (expression !== '') {
      try {
        filter = new BpfFilter(expression, snaplen);
      } catch (err) {
        send(res, 400, { error: (err as Error).message });
        return;
      }
    }
    res.writeHead(200, { 'content-type': 'application/x-pcapng' });
    const stream = new CaptureStream({
      port,
      name,
      description: port === 'drop' ? `frames ${dp.config.node.name} dropped, stage and reason as comment` : `port ${name} of ${dp.config.node.name}`,
      snaplen,
      filter,
      clock: dp.clock,
      capacity: dp.pool.capacity,
      write: (bytes) => void res.write(bytes),
      queued: () => res.writableLength,
      // A port removed at run time ends its streams (its number may go to another port).
      stillOurs: port === 'drop' ? undefined : () => dp.ctx.ports.names[port] === name,
      ended: () => res.end(),
    });
    this.open.set(stream, { port: name, filter: filter === null ? null : expression, snaplen });
    if (port === 'drop') taps.addDrops(stream);
    else taps.addPorts(stream);
    // A port removed while nothing crosses it: noticed within half a second.
    const watch = port === 'drop' ? undefined : setInterval(() => dp.ctx.ports.names[port] !== name && res.end(), 500).unref();
    res.on('close', () => {
      clearInterval(watch);
      stream.close();
      if (port === 'drop') taps.removeDrops(stream);
      else taps.removePorts(stream);
      this.open.delete(stream);
    });
  }
}
