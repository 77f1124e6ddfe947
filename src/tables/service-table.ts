/**
 * ServiceTable: the Services kube-proxy would program, as the DNAT stage reads them — each
 * frontend (an address, port and protocol a client may connect to) names a *service port*
 * (one port of one Service), which has endpoints (pod address and target port).
 *
 * Frontends of a service port, as kube-proxy's KUBE-SERVICES and KUBE-NODEPORTS chains match:
 *   CLUSTER_IP     clusterIP:port
 *   NODE_PORT      every address of the node (each router interface with an address: L3
 *                  ports, bridges, VXLAN devices, as kube-proxy's `--dst-type LOCAL`):nodePort,
 *                  for types NodePort and LoadBalancer
 *   EXTERNAL_IP    each of externalIPs:port
 *   LOAD_BALANCER  loadBalancerIP:port, for type LoadBalancer
 * keyed (address, protocol << 16 | port) in a KeyIndex: `lookup` is one hash probe. When two
 * Services claim one frontend the first keeps it and the other waits; it takes over when the
 * first lets go (`shadowed`).
 *
 * Endpoints: one per (service port, endpoint address) — an endpoint with `ports` of its own
 * only for the Service ports it lists (EndpointSpec.ports: a named targetPort resolved per
 * pod) — and per endpoint id, address, target port (the endpoint's own number for this
 * Service port, else the port's targetPort), owning service port, generation (bumped
 * when an id is reused) and flags: READY, SERVING, TERMINATING, LOCAL (its nodeName is this
 * node's), and the candidate sets it is in. Candidates per service port, as kube-proxy's
 * CategorizeEndpoints makes them: *cluster* = the ready endpoints, or when none is ready the
 * serving-and-terminating ones; *local* = the same among local endpoints. `choice(sp)` is
 * one Int32Array [nCluster, nLocal, cluster ids..., local ids...], rebuilt when the Service
 * changes; the DNAT stage picks uniformly from one of the two lists.
 *
 * Applying (the control side; see src/dataplane/services.ts for the dataplane's API):
 *   upsert(spec)        add or replace one Service (all its ports), keyed namespace/name
 *   remove(ns, name)    remove one
 *   apply(specs)        the whole set: each spec upserted, every Service not in it removed
 * Cost is proportional to the Services that changed: an unchanged Service (the same object,
 * or one equal field by field) costs a comparison; a changed one is diffed by port (a port
 * that stays keeps its id) and by endpoint address (an endpoint that stays keeps its id, so
 * flows and affinity to it are untouched). `takeChanges()` then says what conntrack must
 * forget, as kube-proxy does for UDP: endpoints of UDP ports removed or no longer candidates
 * (their entries are flushed), and UDP frontends that had no endpoint and now have one
 * (entries made while they had none, without DNAT, are flushed).
 *
 * Memory: typed arrays that double as they fill, plus per Service a record and per service
 * port two small Int32Arrays and a frontend list (`docs/benchmarks.md`: bytes per Service
 * and per endpoint).
 */
import { parseIpv4 } from '../wire/ipv4-address.ts';
import { IPPROTO_TCP, IPPROTO_UDP } from './conntrack-store.ts';
import { KeyIndex } from './key-index.ts';
import { endpointPortFor, type ServiceSpec, sameServiceSpec, serviceKey, servicePortName } from './service-spec.ts';

export const enum FrontendKind {
  CLUSTER_IP = 0,
  NODE_PORT = 1,
  EXTERNAL_IP = 2,
  LOAD_BALANCER = 3,
}
export const FRONTEND_KIND_NAMES = ['clusterIP', 'nodePort', 'externalIP', 'loadBalancer'];

/** Endpoint flags (`epFlags`). */
export const EP_READY = 1;
export const EP_SERVING = 2;
export const EP_TERMINATING = 4;
export const EP_LOCAL = 8;
export const EP_IN_CLUSTER = 16;
export const EP_IN_LOCAL = 32;

/** Service port flags (`spFlags`). */
export const SP_USED = 1;
export const SP_EXTERNAL_LOCAL = 2;
export const SP_INTERNAL_LOCAL = 4;
/** No endpoint the policies could ever reach: kube-proxy's REJECT. */
export const SP_REJECT = 8;

/**
 * The service tag of a flow to a Service (Conntrack.serviceTagOf): its endpoint id + 1 in the
 * low 30 bits, and SERVICE_TAG_MASQ when the flow is to be masqueraded at POSTROUTING
 * (what kube-proxy's KUBE-MARK-MASQ says with 0x4000 in the packet mark). Internal: the
 * connection's mark as conntrack -L shows it stays 0, as Linux's does for kube-proxy traffic.
 */
export const SERVICE_TAG_MASQ = 1 << 30;
export const SERVICE_TAG_ENDPOINT = SERVICE_TAG_MASQ - 1;

/** An endpoint that lost its flows' conntrack entries (UDP): id (until reused) and where it was. */
export interface StaleEndpoint {
  ep: number;
  addr: number;
  port: number;
}

/** What applying changed that conntrack must hear about (see the header). */
export interface ServiceChanges {
  staleUdpEndpoints: StaleEndpoint[];
  /** UDP frontends (address, port) that went from no endpoint to some. */
  revivedUdpFrontends: { addr: number; port: number }[];
}

export interface ServiceRecord {
  spec: ServiceSpec;
  /** Service port ids, one per spec port. */
  sps: number[];
  epoch: number;
}

const INITIAL = 64;

function grow<T extends Int32Array | Uint8Array>(a: T, n: number): T {
  if (n <= a.length) return a;
  let size = a.length;
  while (size < n) size *= 2;
  const b = new (a.constructor as new (n: number) => T)(size);
  b.set(a);
  return b;
}

export class ServiceTable {
  readonly nodeName: string;
  /** The node's addresses (int32), where NodePorts listen. */
  readonly nodeAddresses: readonly number[];

  // Service ports, by id.
  spProto = new Uint8Array(INITIAL);
  spFlags = new Uint8Array(INITIAL);
  spAffinitySeconds = new Int32Array(INITIAL);
  /** [nCluster, nLocal, cluster ids..., local ids...] per service port. */
  readonly spChoice: Int32Array[] = [];
  /** Every endpoint id of the port, in spec order. */
  readonly spEndpoints: Int32Array[] = [];
  /** Frontend keys of the port: (address, proto << 16 | port, kind) triples. */
  readonly spFrontends: number[][] = [];
  readonly spService: (ServiceRecord | null)[] = [];
  /** Index of the port in its Service's spec. */
  spPortIndex = new Int32Array(INITIAL);
  private spFree: number[] = [];
  private spHigh = 0;

  // Endpoints, by id.
  epAddr = new Int32Array(INITIAL);
  epPort = new Int32Array(INITIAL);
  epSp = new Int32Array(INITIAL);
  epFlags = new Uint8Array(INITIAL);
  epGen = new Int32Array(INITIAL);
  private epFree: number[] = [];
  private epHigh = 0;
  /** Live endpoints and service ports. */
  endpointCount = 0;
  servicePortCount = 0;

  // Frontends, by KeyIndex id.
  private fe = new KeyIndex(INITIAL);
  feSp = new Int32Array(INITIAL);
  feKind = new Uint8Array(INITIAL);
  /** Frontend key "a,b" → service ports waiting for it, in claim order (collisions only). */
  private readonly shadowed = new Map<string, { sp: number; kind: number }[]>();

  private readonly services = new Map<string, ServiceRecord>();
  /** The record of each spec object applied: an unchanged Service passed again is one lookup. */
  private readonly bySpec = new Map<ServiceSpec, ServiceRecord>();
  private epoch = 0;
  private changes: ServiceChanges = { staleUdpEndpoints: [], revivedUdpFrontends: [] };

  constructor(nodeName: string, nodeAddresses: readonly number[]) {
    this.nodeName = nodeName;
    this.nodeAddresses = nodeAddresses.map((a) => a | 0);
  }

  get serviceCount(): number {
    return this.services.size;
  }

  // ---------------------------------------------------------------------------------------
  // The packet path

  /** The frontend for a packet's destination (protocol 6 or 17), or -1. */
  lookup(proto: number, addr: number, port: number): number {
    return this.fe.find(addr, (proto << 16) | port);
  }

  // ---------------------------------------------------------------------------------------
  // Applying Services

  /** Applies the whole set: upserts each, removes every Service not in it. */
  apply(specs: readonly ServiceSpec[]): void {
    const epoch = ++this.epoch;
    const bySpec = this.bySpec;
    for (let i = 0; i < specs.length; i++) {
      const s = specs[i];
      const same = bySpec.get(s);
      if (same !== undefined) same.epoch = epoch;
      else this.upsert(s).epoch = epoch;
    }
    for (const [key, rec] of this.services) if (rec.epoch !== epoch) this.removeRecord(key, rec);
  }

  /** Adds or replaces one Service. */
  upsert(spec: ServiceSpec): ServiceRecord {
    const key = serviceKey(spec);
    const old = this.services.get(key);
    if (old !== undefined && sameServiceSpec(old.spec, spec)) {
      this.bySpec.delete(old.spec);
      this.bySpec.set(spec, old);
      old.spec = spec;
      return old;
    }
    if (old !== undefined) this.bySpec.delete(old.spec);
    const prev = this.bySpec.get(spec);
    // The same object under another name (mutated by its owner): forget the old binding.
    if (prev !== undefined && prev !== old) this.bySpec.delete(spec);
    const rec: ServiceRecord = old ?? { spec, sps: [], epoch: this.epoch };
    const oldSps = new Map<string, number>();
    if (old !== undefined) old.spec.ports.forEach((p, i) => oldSps.set(`${p.protocol}/${p.port}`, old.sps[i]));
    rec.spec = spec;
    rec.sps = spec.ports.map((p, i) => {
      const k = `${p.protocol}/${p.port}`;
      let sp = oldSps.get(k) ?? -1;
      oldSps.delete(k);
      if (sp < 0) sp = this.allocSp();
      this.spService[sp] = rec;
      this.spPortIndex[sp] = i;
      this.programPort(sp, spec, i);
      return sp;
    });
    for (const sp of oldSps.values()) this.freeSp(sp);
    this.services.set(key, rec);
    this.bySpec.set(spec, rec);
    return rec;
  }

  /** Removes the Service namespace/name; false when there is none. */
  remove(namespace: string, name: string): boolean {
    const key = serviceKey({ namespace, name });
    const rec = this.services.get(key);
    if (rec === undefined) return false;
    this.removeRecord(key, rec);
    return true;
  }

  /** What conntrack must forget since the last call (see the header); resets the list. */
  takeChanges(): ServiceChanges {
    const c = this.changes;
    this.changes = { staleUdpEndpoints: [], revivedUdpFrontends: [] };
    return c;
  }

  /** The Services applied, in no particular order. */
  specs(): ServiceSpec[] {
    return [...this.services.values()].map((r) => r.spec);
  }

  /** The service port ids of Service namespace/name (spec port order), or []. */
  servicePortsOf(namespace: string, name: string): readonly number[] {
    return this.services.get(serviceKey({ namespace, name }))?.sps ?? [];
  }

  /** "namespace/name:port" of service port `sp`. */
  servicePortName(sp: number): string {
    const rec = this.spService[sp];
    return rec === null || rec === undefined ? `#${sp}` : servicePortName(rec.spec, rec.spec.ports[this.spPortIndex[sp]]);
  }

  private removeRecord(key: string, rec: ServiceRecord): void {
    for (const sp of rec.sps) this.freeSp(sp);
    this.services.delete(key);
    if (this.bySpec.get(rec.spec) === rec) this.bySpec.delete(rec.spec);
  }

  // ---------------------------------------------------------------------------------------
  // One service port

  private allocSp(): number {
    const sp = this.spFree.length > 0 ? this.spFree.pop()! : this.spHigh++;
    const n = sp + 1;
    this.spProto = grow(this.spProto, n);
    this.spFlags = grow(this.spFlags, n);
    this.spAffinitySeconds = grow(this.spAffinitySeconds, n);
    this.spPortIndex = grow(this.spPortIndex, n);
    this.spChoice[sp] = new Int32Array(2);
    this.spEndpoints[sp] = new Int32Array(0);
    this.spFrontends[sp] = [];
    this.spFlags[sp] = SP_USED;
    this.servicePortCount++;
    return sp;
  }

  private freeSp(sp: number): void {
    this.setFrontends(sp, []);
    for (const ep of this.spEndpoints[sp]) this.freeEp(ep, true);
    this.spEndpoints[sp] = new Int32Array(0);
    this.spChoice[sp] = new Int32Array(2);
    this.spFlags[sp] = 0;
    this.spService[sp] = null;
    this.spFree.push(sp);
    this.servicePortCount--;
  }

  /** Programs service port `sp` from port `i` of `spec`: frontends, endpoints, candidates. */
  private programPort(sp: number, spec: ServiceSpec, i: number): void {
    const p = spec.ports[i];
    const proto = p.protocol === 'UDP' ? IPPROTO_UDP : IPPROTO_TCP;
    const protoChanged = this.spProto[sp] !== proto;
    this.spProto[sp] = proto;
    const wasReachable = (this.spFlags[sp] & SP_REJECT) === 0 && this.spChoice[sp][0] + this.spChoice[sp][1] > 0 && !protoChanged;
    let flags = SP_USED;
    if (spec.externalTrafficPolicy === 'Local') flags |= SP_EXTERNAL_LOCAL;
    if (spec.internalTrafficPolicy === 'Local') flags |= SP_INTERNAL_LOCAL;
    this.spAffinitySeconds[sp] = spec.sessionAffinity === 'ClientIP' ? spec.sessionAffinityTimeoutSeconds : 0;

    const pp = (proto << 16) | p.port;
    const fronts: number[] = [parseIpv4(spec.clusterIP) | 0, pp, FrontendKind.CLUSTER_IP];
    if (p.nodePort !== undefined && (spec.type === 'NodePort' || spec.type === 'LoadBalancer')) {
      for (const a of this.nodeAddresses) fronts.push(a, (proto << 16) | p.nodePort, FrontendKind.NODE_PORT);
    }
    for (const x of spec.externalIPs) fronts.push(parseIpv4(x) | 0, pp, FrontendKind.EXTERNAL_IP);
    if (spec.type === 'LoadBalancer' && spec.loadBalancerIP !== undefined) fronts.push(parseIpv4(spec.loadBalancerIP) | 0, pp, FrontendKind.LOAD_BALANCER);
    this.setFrontends(sp, fronts);

    // Endpoints, diffed by address: one that stays keeps its id. An endpoint with ports of
    // its own serves this port only if it lists it, at its own number (kube-proxy groups an
    // EndpointSlice's endpoints by each port's name and protocol).
    const before = new Map<number, number>();
    for (const ep of this.spEndpoints[sp]) before.set(this.epAddr[ep], ep);
    const eps: number[] = [];
    for (const e of spec.endpoints) {
      const port = endpointPortFor(e, p);
      if (port < 0) continue;
      const addr = parseIpv4(e.ip) | 0;
      let ep = before.get(addr) ?? -1;
      if (ep >= 0) {
        before.delete(addr);
        // Another target port or protocol is another endpoint to the flows that went to it.
        if ((this.epPort[ep] !== port || protoChanged) && (this.epFlags[ep] & (EP_IN_CLUSTER | EP_IN_LOCAL)) !== 0) this.staleIfUdp(ep, true);
      } else {
        ep = this.allocEp(sp);
      }
      this.epAddr[ep] = addr;
      this.epPort[ep] = port;
      const serving = e.serving ?? e.ready;
      this.epFlags[ep] = (this.epFlags[ep] & (EP_IN_CLUSTER | EP_IN_LOCAL)) | (e.ready ? EP_READY : 0) | (serving ? EP_SERVING : 0) | (e.terminating === true ? EP_TERMINATING : 0) | (e.nodeName === this.nodeName ? EP_LOCAL : 0);
      eps.push(ep);
    }
    for (const ep of before.values()) this.freeEp(ep, !protoChanged);
    this.spEndpoints[sp] = Int32Array.from(eps);
    this.buildChoice(sp, flags);
    const reachable = (this.spFlags[sp] & SP_REJECT) === 0;
    if (proto === IPPROTO_UDP && reachable && !wasReachable) {
      for (let k = 0; k < fronts.length; k += 3) this.changes.revivedUdpFrontends.push({ addr: fronts[k], port: fronts[k + 1] & 0xffff });
    }
  }

  /** The candidate lists of `sp` (kube-proxy's CategorizeEndpoints), its flags and REJECT. */
  private buildChoice(sp: number, flags: number): void {
    const eps = this.spEndpoints[sp];
    let ready = 0;
    let readyLocal = 0;
    for (const ep of eps) {
      const f = this.epFlags[ep];
      if ((f & EP_READY) !== 0) {
        ready++;
        if ((f & EP_LOCAL) !== 0) readyLocal++;
      }
    }
    const inCluster = (f: number): boolean => (ready > 0 ? (f & EP_READY) !== 0 : (f & (EP_SERVING | EP_TERMINATING)) === (EP_SERVING | EP_TERMINATING));
    const inLocal = (f: number): boolean =>
      (f & EP_LOCAL) !== 0 && (readyLocal > 0 ? (f & EP_READY) !== 0 : (f & (EP_SERVING | EP_TERMINATING)) === (EP_SERVING | EP_TERMINATING));
    const cluster: number[] = [];
    const local: number[] = [];
    for (const ep of eps) {
      const f = this.epFlags[ep];
      const was = f & (EP_IN_CLUSTER | EP_IN_LOCAL);
      let now = 0;
      if (inCluster(f)) {
        cluster.push(ep);
        now |= EP_IN_CLUSTER;
      }
      if (inLocal(f)) {
        local.push(ep);
        now |= EP_IN_LOCAL;
      }
      // No longer a candidate: its UDP flows go, as kube-proxy flushes stale UDP endpoints.
      if (was !== 0 && now === 0) this.staleIfUdp(ep, true);
      this.epFlags[ep] = (f & ~(EP_IN_CLUSTER | EP_IN_LOCAL)) | now;
    }
    const choice = new Int32Array(2 + cluster.length + local.length);
    choice[0] = cluster.length;
    choice[1] = local.length;
    choice.set(cluster, 2);
    choice.set(local, 2 + cluster.length);
    this.spChoice[sp] = choice;
    // kube-proxy's "has endpoints": any endpoint a policy in force could use.
    const onlyLocal = (flags & SP_EXTERNAL_LOCAL) !== 0 && (flags & SP_INTERNAL_LOCAL) !== 0;
    const reachable = onlyLocal ? local.length : cluster.length + local.length;
    this.spFlags[sp] = reachable === 0 ? flags | SP_REJECT : flags;
  }

  private staleIfUdp(ep: number, stale: boolean): void {
    if (stale && this.spProto[this.epSp[ep]] === IPPROTO_UDP) this.changes.staleUdpEndpoints.push({ ep, addr: this.epAddr[ep], port: this.epPort[ep] });
  }

  private allocEp(sp: number): number {
    const ep = this.epFree.length > 0 ? this.epFree.pop()! : this.epHigh++;
    const n = ep + 1;
    this.epAddr = grow(this.epAddr, n);
    this.epPort = grow(this.epPort, n);
    this.epSp = grow(this.epSp, n);
    this.epFlags = grow(this.epFlags, n);
    this.epGen = grow(this.epGen, n);
    this.epSp[ep] = sp;
    this.epFlags[ep] = 0;
    this.epGen[ep]++;
    this.endpointCount++;
    return ep;
  }

  private freeEp(ep: number, staleIfCandidate: boolean): void {
    if ((this.epFlags[ep] & (EP_IN_CLUSTER | EP_IN_LOCAL)) !== 0) this.staleIfUdp(ep, staleIfCandidate);
    this.epFlags[ep] = 0;
    this.epSp[ep] = -1;
    this.epFree.push(ep);
    this.endpointCount--;
  }

  // ---------------------------------------------------------------------------------------
  // Frontends

  /** Replaces the frontends of `sp` by `fronts` ((address, proto << 16 | port, kind) triples). */
  private setFrontends(sp: number, fronts: number[]): void {
    const old = this.spFrontends[sp];
    for (let k = 0; k < old.length; k += 3) this.releaseFrontend(sp, old[k], old[k + 1]);
    for (let k = 0; k < fronts.length; k += 3) this.claimFrontend(sp, fronts[k], fronts[k + 1], fronts[k + 2]);
    this.spFrontends[sp] = fronts;
  }

  private claimFrontend(sp: number, a: number, b: number, kind: number): void {
    const id = this.fe.find(a, b);
    if (id >= 0) {
      const key = `${a},${b}`;
      const waiting = this.shadowed.get(key) ?? [];
      waiting.push({ sp, kind });
      this.shadowed.set(key, waiting);
      return;
    }
    this.installFrontend(sp, a, b, kind);
  }

  private installFrontend(sp: number, a: number, b: number, kind: number): void {
    if (this.fe.size === this.fe.capacity) this.growFrontends();
    const id = this.fe.insert(a, b);
    this.feSp[id] = sp;
    this.feKind[id] = kind;
  }

  private releaseFrontend(sp: number, a: number, b: number): void {
    const key = `${a},${b}`;
    const id = this.fe.find(a, b);
    if (id >= 0 && this.feSp[id] === sp) {
      this.fe.remove(id);
      const waiting = this.shadowed.get(key);
      if (waiting !== undefined) {
        const next = waiting.shift()!;
        if (waiting.length === 0) this.shadowed.delete(key);
        this.installFrontend(next.sp, a, b, next.kind);
      }
      return;
    }
    const waiting = this.shadowed.get(key);
    if (waiting === undefined) return;
    const at = waiting.findIndex((w) => w.sp === sp);
    if (at >= 0) waiting.splice(at, 1);
    if (waiting.length === 0) this.shadowed.delete(key);
  }

  /** A frontend index twice as large (ids change; only feSp/feKind refer to them). */
  private growFrontends(): void {
    const old = this.fe;
    const next = new KeyIndex(old.capacity * 2);
    const sp = new Int32Array(next.capacity);
    const kind = new Uint8Array(next.capacity);
    for (let id = 0; id < old.capacity; id++) {
      if (old.used[id] === 0) continue;
      const nid = next.insert(old.k1[id], old.k2[id]);
      sp[nid] = this.feSp[id];
      kind[nid] = this.feKind[id];
    }
    this.fe = next;
    this.feSp = sp;
    this.feKind = kind;
  }

  /** Frontends in use. */
  get frontendCount(): number {
    return this.fe.size;
  }

  /** Whether service port `sp`'s frontend (a, b) is the one installed (not waiting behind another Service). */
  ownsFrontend(sp: number, a: number, b: number): boolean {
    const id = this.fe.find(a, b);
    return id >= 0 && this.feSp[id] === sp;
  }
}
