/**
 * VxlanTable: the VXLAN devices of one router (flannel.1) and their forwarding entries —
 * what `ip -d link show flannel.1` and `bridge fdb show dev flannel.1` show on a node.
 *
 * A device is a router interface (IfKind.VXLAN) with its VNI, UDP port and local underlay
 * address. Its FDB maps a remote VTEP's MAC to that VTEP's underlay address (flanneld's
 * `bridge fdb add <mac> dev flannel.1 dst <ip> self permanent`): encapsulation looks up the
 * inner destination MAC there. Decapsulation accepts frames only from underlay addresses
 * that some FDB entry of the device names (`isKnownVtep`: a count per (device, address)).
 * Keys are int32 pairs in a KeyIndex; nothing here parses packets or allocates per lookup.
 */
import { KeyIndex } from './key-index.ts';

/** Devices one router may have. */
export const MAX_VXLAN_DEVICES = 16;

export interface VxlanFdbView {
  ifIndex: number;
  macHi: number;
  macLo: number;
  dst: number;
}

export class VxlanTable {
  /** Per device (0..count): its router interface, VNI, UDP port, local underlay address. */
  readonly ifIndex = new Int32Array(MAX_VXLAN_DEVICES);
  readonly vni = new Int32Array(MAX_VXLAN_DEVICES);
  readonly port = new Int32Array(MAX_VXLAN_DEVICES);
  readonly local = new Int32Array(MAX_VXLAN_DEVICES);
  /** 1: the device's outer packets go through a kernel UDP socket (underlay: socket), not an L3 port. */
  readonly socket = new Uint8Array(MAX_VXLAN_DEVICES);
  /** Per router interface: its device number, or -1 (interfaces that are not VXLAN). */
  readonly deviceOfIf: Int32Array;
  /** Per UDP port: 1 when some device listens on it (the cheap test ip4-local makes). */
  readonly listening = new Uint8Array(65536);
  count = 0;
  /** Moves on with every FDB entry added, changed or removed: what a cache of entries compares with. */
  version = 0;

  private readonly fdbIndex: KeyIndex;
  /** Per FDB entry: the remote VTEP's underlay address (int32). */
  readonly fdbDst: Int32Array;
  private readonly vtepIndex: KeyIndex;
  /** Per (device interface, underlay address) entry: how many FDB entries name it. */
  private readonly vtepRefs: Int32Array;

  constructor(maxInterfaces: number, fdbCapacity = 4096) {
    this.deviceOfIf = new Int32Array(maxInterfaces).fill(-1);
    this.fdbIndex = new KeyIndex(fdbCapacity);
    this.fdbDst = new Int32Array(fdbCapacity);
    this.vtepIndex = new KeyIndex(fdbCapacity);
    this.vtepRefs = new Int32Array(fdbCapacity);
  }

  addDevice(ifIndex: number, vni: number, port: number, local: number, socket = false): number {
    const d = this.count;
    if (d === MAX_VXLAN_DEVICES) throw new Error(`more than ${MAX_VXLAN_DEVICES} vxlan devices`);
    this.ifIndex[d] = ifIndex;
    this.vni[d] = vni;
    this.port[d] = port;
    this.local[d] = local | 0;
    this.socket[d] = socket ? 1 : 0;
    this.deviceOfIf[ifIndex] = d;
    // A socket device's VXLAN arrives through its socket, never as UDP to one of our addresses.
    if (!socket) this.listening[port] = 1;
    this.count = d + 1;
    return d;
  }

  /** The device receiving UDP to (local address, port) with this VNI, or -1. */
  deviceFor(local: number, port: number, vni: number): number {
    local |= 0;
    for (let d = 0; d < this.count; d++) {
      if (this.local[d] === local && this.port[d] === port && this.vni[d] === vni) return d;
    }
    return -1;
  }

  /** Whether a device listens on (local address, port), whatever its VNI. */
  listens(local: number, port: number): boolean {
    local |= 0;
    for (let d = 0; d < this.count; d++) if (this.local[d] === local && this.port[d] === port && this.socket[d] === 0) return true;
    return false;
  }

  /** The FDB entry id for a MAC on a device's interface, or -1. */
  findFdb(ifIndex: number, macHi: number, macLo: number): number {
    return this.fdbIndex.find((ifIndex << 16) | macHi, macLo);
  }

  /** Adds or replaces `mac → dst`; false when the table is full. */
  setFdb(ifIndex: number, macHi: number, macLo: number, dst: number): boolean {
    const old = this.findFdb(ifIndex, macHi, macLo);
    if (old >= 0) {
      if (this.fdbDst[old] === (dst | 0)) return true;
      this.version++;
      this.unref(ifIndex, this.fdbDst[old]);
      this.fdbDst[old] = dst | 0;
      return this.ref(ifIndex, dst);
    }
    const id = this.fdbIndex.insert((ifIndex << 16) | macHi, macLo);
    if (id < 0) return false;
    if (!this.ref(ifIndex, dst)) {
      this.fdbIndex.remove(id);
      return false;
    }
    this.fdbDst[id] = dst | 0;
    this.version++;
    return true;
  }

  /** Removes the entry for a MAC; false when there was none. */
  deleteFdb(ifIndex: number, macHi: number, macLo: number): boolean {
    const id = this.findFdb(ifIndex, macHi, macLo);
    if (id < 0) return false;
    this.unref(ifIndex, this.fdbDst[id]);
    this.fdbIndex.remove(id);
    this.version++;
    return true;
  }

  /** Whether an FDB entry of the device's interface names this underlay address. */
  isKnownVtep(ifIndex: number, addr: number): boolean {
    return this.vtepIndex.find(ifIndex, addr) >= 0;
  }

  get fdbCapacity(): number {
    return this.fdbIndex.capacity;
  }

  get fdbSize(): number {
    return this.fdbIndex.size;
  }

  /** Every FDB entry, for display. */
  fdbEntries(): VxlanFdbView[] {
    const idx = this.fdbIndex;
    const out: VxlanFdbView[] = [];
    for (let id = 0; id < idx.capacity; id++) {
      if (!idx.used[id]) continue;
      const k1 = idx.k1[id];
      out.push({ ifIndex: k1 >>> 16, macHi: k1 & 0xffff, macLo: idx.k2[id] >>> 0, dst: this.fdbDst[id] >>> 0 });
    }
    return out;
  }

  private ref(ifIndex: number, addr: number): boolean {
    const id = this.vtepIndex.insert(ifIndex, addr);
    if (id < 0) return false;
    this.vtepRefs[id]++;
    return true;
  }

  private unref(ifIndex: number, addr: number): void {
    const id = this.vtepIndex.find(ifIndex, addr);
    if (id < 0) return;
    if (--this.vtepRefs[id] <= 0) {
      this.vtepRefs[id] = 0;
      this.vtepIndex.remove(id);
    }
  }
}
