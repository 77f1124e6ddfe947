/**
 * PortTable: the dataplane's attachments to the outside world and the bridges they join.
 *
 * A port is either an L2 member of a bridge (a pod's veth end on cni0) or an L3 port (a routed
 * interface with its own address, like a node's eth0). Ports carry link state and the
 * counters `show ports` prints in the manner of `ip -s link`. Port i's frames leave through
 * `transmit` handlers installed by the port drivers (TAP, replay).
 */

export const enum PortRole {
  BRIDGED = 0,
  ROUTED = 1,
}

export interface BridgeInfo {
  name: string;
  /** Member ports, in config order. */
  members: Int32Array;
  ageingSeconds: number;
  /** Router interface index when the bridge has an address, else -1. */
  ifIndex: number;
}

export class PortTable {
  readonly names: string[] = [];
  readonly role: PortRole[] = [];
  /** Bridge index of a bridged port, else -1. */
  bridgeOf!: Int32Array;
  /** Router interface of a routed port, else -1. */
  ifOf!: Int32Array;
  up!: Uint8Array;
  rxFrames!: Float64Array;
  rxBytes!: Float64Array;
  /** Frames the device had for us that were dropped for want of a free frame slot. */
  rxNoBuffer!: Float64Array;
  txFrames!: Float64Array;
  txBytes!: Float64Array;
  txDrops!: Float64Array;
  /** Times the port went down (its device vanished, say). */
  linkDowns!: Float64Array;
  readonly bridges: BridgeInfo[] = [];

  get count(): number {
    return this.names.length;
  }

  addBridge(name: string, ageingSeconds: number): number {
    this.bridges.push({ name, members: new Int32Array(0), ageingSeconds, ifIndex: -1 });
    return this.bridges.length - 1;
  }

  addPort(name: string, role: PortRole): number {
    this.names.push(name);
    this.role.push(role);
    return this.names.length - 1;
  }

  /** Sizes the per-port arrays once every port is added. */
  seal(bridgeOf: number[], ifOf: number[]): void {
    const n = this.names.length;
    this.bridgeOf = Int32Array.from(bridgeOf);
    this.ifOf = Int32Array.from(ifOf);
    this.up = new Uint8Array(n).fill(1);
    this.rxFrames = new Float64Array(n);
    this.rxBytes = new Float64Array(n);
    this.rxNoBuffer = new Float64Array(n);
    this.txFrames = new Float64Array(n);
    this.txBytes = new Float64Array(n);
    this.txDrops = new Float64Array(n);
    this.linkDowns = new Float64Array(n);
    for (let b = 0; b < this.bridges.length; b++) {
      const members: number[] = [];
      for (let p = 0; p < n; p++) if (bridgeOf[p] === b) members.push(p);
      this.bridges[b].members = Int32Array.from(members);
    }
  }

  indexOf(name: string): number {
    return this.names.indexOf(name);
  }

  bridgeIndexOf(name: string): number {
    return this.bridges.findIndex((b) => b.name === name);
  }
}
