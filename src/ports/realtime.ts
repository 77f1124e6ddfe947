/**
 * `run --realtime PRIO`: the packet thread under SCHED_FIFO, as VPP's `scheduler-policy fifo`
 * or `chrt -f` would run it, but for that thread only (the addon's setRealtime,
 * native/realtime.c): the thread that reads the TAPs and runs the graph is then never made to
 * wait behind ordinary tasks — the pods' own processes, iperf3, V8's garbage-collection and
 * compiler threads — which is where a ping's worst round trips went (docs/benchmarks.md,
 * "Where a ping's time goes"). Needs CAP_SYS_NICE (root has it).
 */
import { nativeAddon } from './native-addon.ts';

/** Puts the calling thread under SCHED_FIFO at `priority` (1-99); throws why not. */
export function setRealtime(priority: number): void {
  const r = nativeAddon();
  if (!('addon' in r)) throw new Error(r.error);
  const set = (r.addon as { setRealtime?: (p: number) => void }).setRealtime;
  if (set === undefined) throw new Error('the nodeplane addon predates setRealtime: rebuild it (npx node-gyp rebuild)');
  set(priority);
}
