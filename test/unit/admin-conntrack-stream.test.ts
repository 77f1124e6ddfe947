/**
 * The conntrack listing and flush on a large table share the packet thread: 100,000 entries
 * are read completely and in id order while dataplane batches keep running between chunks;
 * a reader that stops reading holds the walk (entries created meanwhile, past the cursor,
 * still come); a reader that goes away ends it; a flush of 100,000 runs in chunks too.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { requestJson, streamLines } from '../../src/admin/client.ts';
import type { ConntrackEntryJson } from '../../src/admin/conntrack-json.ts';
import { TCP_SYN } from '../../src/tables/conntrack-tcp.ts';
import { POD_A, SERVER, TCP, UDP, natNode, readLines, serve, type NatNode, type Served } from '../helpers/conntrack-admin.ts';

const N = 100_000;

/** N UDP flows from 16 pods (ids 0 .. N-1 in creation order), and `tcp` TCP ones after them. */
function fill(n: NatNode, tcp = 0): void {
  const { ct } = n;
  for (let i = 0; i < N; i++) ct.track(UDP, POD_A + (i >>> 14), SERVER, 1024 + (i & 0x3fff), 53, 0, 60);
  for (let i = 0; i < tcp; i++) ct.track(TCP, POD_A, SERVER, 1024 + i, 80, TCP_SYN, 60);
  expect(n.ct.count).toBe(N + tcp);
}

/** Runs dataplane batches on every turn of the event loop until stopped; `onRun` sees each. */
function keepForwarding(n: NatNode, onRun: () => void): () => void {
  let on = true;
  const loop = (): void => {
    if (!on) return;
    n.dp.run();
    onRun();
    setImmediate(loop);
  };
  setImmediate(loop);
  return () => {
    on = false;
  };
}

let served: Served | undefined;

afterEach(async () => {
  await served?.close();
  served = undefined;
});

describe('a large conntrack table through the admin socket', () => {
  it('reads 100,000 entries completely and in order, with batches processed between the chunks', async () => {
    const n = natNode(131_072);
    fill(n);
    served = await serve(n.dp);
    let received = 0;
    let runsDuring = 0;
    const stop = keepForwarding(n, () => {
      if (received > 0 && received < N) runsDuring++;
    });
    const ids: number[] = [];
    try {
      await streamLines(served.sock, '/v1/conntrack', {
        onLines: (ls) => {
          for (const l of ls) if (l !== '') ids.push((JSON.parse(l) as ConntrackEntryJson).id);
          received = ids.length;
        },
      });
    } finally {
      stop();
    }
    expect(ids.length).toBe(N);
    expect(ids.every((id, i) => id === i)).toBe(true);
    // The walk took many turns of the event loop, and the dataplane ran in them.
    expect(runsDuring).toBeGreaterThanOrEqual(10);
  }, 60_000);

  it('holds the walk while the reader does not read: entries created meanwhile past the cursor still come', async () => {
    const n = natNode(131_072);
    fill(n);
    served = await serve(n.dp);
    let first = true;
    let count = 0;
    let last: ConntrackEntryJson | undefined;
    await streamLines(served.sock, '/v1/conntrack', {
      onLines: (ls) => {
        for (const l of ls) if (l !== '') last = JSON.parse(l) as ConntrackEntryJson;
        count += ls.filter((l) => l !== '').length;
        if (!first) return;
        first = false;
        // The reader stalls for 1.5 s, long enough for an unchecked walk to finish; a new flow is born meanwhile.
        return new Promise((resolve) =>
          setTimeout(() => {
            n.ct.track(TCP, POD_A, SERVER, 55555, 443, TCP_SYN, 60);
            resolve();
          }, 1500),
        );
      },
    });
    expect(count).toBe(N + 1);
    expect(last).toMatchObject({ id: N, proto: 'tcp', orig: { sport: 55555, dport: 443 } });
  }, 60_000);

  it('ends the walk when the reader goes away, and serves the next request', async () => {
    const n = natNode(131_072);
    fill(n);
    served = await serve(n.dp);
    let got = 0;
    await streamLines(served.sock, '/v1/conntrack', {
      onLines: (ls) => {
        got += ls.length;
        return false;
      },
    });
    expect(got).toBeGreaterThan(0);
    expect(got).toBeLessThan(N);
    expect(await requestJson(served.sock, 'GET', '/v1/conntrack/stats')).toMatchObject({ entries: N });
    expect((await readLines(served.sock, '/v1/conntrack?proto=tcp')).length).toBe(0);
  }, 60_000);

  it('flushes 100,000 entries in chunks between batches, by filter, and counts them', async () => {
    const n = natNode(131_072);
    fill(n, 50);
    served = await serve(n.dp);
    let runs = 0;
    const stop = keepForwarding(n, () => runs++);
    let deleted: unknown;
    try {
      deleted = await requestJson(served.sock, 'DELETE', '/v1/conntrack?proto=udp');
    } finally {
      stop();
    }
    expect(deleted).toEqual({ deleted: N });
    expect(n.ct.count).toBe(50);
    expect(runs).toBeGreaterThanOrEqual(3);
    const left = (await readLines(served.sock, '/v1/conntrack')).map((l) => JSON.parse(l) as ConntrackEntryJson);
    expect(left.map((e) => e.proto)).toEqual(Array(50).fill('tcp'));
  }, 60_000);
});
