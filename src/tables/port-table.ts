/**
 * PortTable: the dataplane's attachments to the outside world and the bridges they join.
 *
 * A port is either an L2 member of a bridge (a pod's veth end on cni0) or an L3 port (a routed
 * interface with its own address, like a node's eth0). Ports carry link state and the
 * counters `show ports` prints in the manner of `ip -s link`. Port i's frames leave through
 * `transmit` handlers installed by the port drivers (TAP, replay).
 *
 * The config's ports are numbered first, in config order, and stay for the dataplane's life.
 * Ports added at run time (`nodeplane port add`, a CNI plugin's pods) take the lowest free
 * number above them; a removed one leaves its number free, down, with zeroed counters and
 * no bridge, so a frame that still named it would be dropped as "port down" rather than
 * reach the next port to take the number. `count` is one past the highest number in use
 * (the per-port loops run to it); `inUse(p)` tells a port from a free number. The per-port
 * arrays grow (doubling) as ports are added, never shrink; stages read them through the
 * table at each batch, so a replaced array is seen at the next one.
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
  /** Port names by number; '' for a free number. */
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
  /** 1 for a port added at run time (not of the config). */
  runtime!: Uint8Array;
  readonly bridges: BridgeInfo[] = [];
  /** Ports of the config: numbers below this are never removed. */
  configCount = 0;

  /** One past the highest port number in use. */
  get count(): number {
    return this.names.length;
  }

  /** Whether `p` is a port (not a free number). */
  inUse(p: number): boolean {
    return p >= 0 && p < this.names.length && this.names[p] !== '';
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

  /** Sizes the per-port arrays once every port of the config is added. */
  seal(bridgeOf: number[], ifOf: number[]): void {
    const n = this.names.length;
    this.configCount = n;
    this.allocate(Math.max(n, 1));
    this.bridgeOf.set(bridgeOf);
    this.ifOf.set(ifOf);
    this.up.fill(1, 0, n);
    for (let b = 0; b < this.bridges.length; b++) this.rebuildMembers(b);
  }

  /**
   * Adds a port at run time: the lowest free number (or a new one), up, counters at zero,
   * a member of `bridge` (its index, or -1) or routed through router interface `ifIndex`.
   * Returns its number. The caller checks the name is new.
   */
  addRuntime(name: string, role: PortRole, bridge: number, ifIndex: number): number {
    let p = this.names.indexOf('', this.configCount);
    if (p < 0) {
      p = this.names.length;
      if (p === this.up.length) this.allocate(p * 2);
      this.names.push(name);
      this.role.push(role);
    } else {
      this.names[p] = name;
      this.role[p] = role;
    }
    this.clear(p);
    this.bridgeOf[p] = bridge;
    this.ifOf[p] = ifIndex;
    this.runtime[p] = 1;
    this.up[p] = 1;
    if (bridge >= 0) this.rebuildMembers(bridge);
    return p;
  }

  /** Removes a port added at run time: its number is free, down, without counters or bridge. */
  removeRuntime(p: number): void {
    if (!this.inUse(p) || this.runtime[p] !== 1) throw new Error(`port ${p} is not a port added at run time`);
    const bridge = this.bridgeOf[p];
    this.names[p] = '';
    this.clear(p);
    if (bridge >= 0) this.rebuildMembers(bridge);
    // Trailing free numbers go, so the per-port loops stop at the highest port in use.
    while (this.names.length > this.configCount && this.names[this.names.length - 1] === '') {
      this.names.pop();
      this.role.pop();
    }
  }

  indexOf(name: string): number {
    return name === '' ? -1 : this.names.indexOf(name);
  }

  bridgeIndexOf(name: string): number {
    return this.bridges.findIndex((b) => b.name === name);
  }

  /** A free number's state: down, no bridge or interface, every counter at zero. */
  private clear(p: number): void {
    this.up[p] = 0;
    this.runtime[p] = 0;
    this.bridgeOf[p] = -1;
    this.ifOf[p] = -1;
    this.rxFrames[p] = 0;
    this.rxBytes[p] = 0;
    this.rxNoBuffer[p] = 0;
    this.txFrames[p] = 0;
    this.txBytes[p] = 0;
    this.txDrops[p] = 0;
    this.linkDowns[p] = 0;
  }

  /** The bridge's members, in port number order (config order for the config's ports). */
  private rebuildMembers(b: number): void {
    const members: number[] = [];
    for (let p = 0; p < this.names.length; p++) if (this.bridgeOf[p] === b && this.names[p] !== '') members.push(p);
    this.bridges[b].members = Int32Array.from(members);
  }

  /** (Re)allocates the per-port arrays for `capacity` ports, keeping what they hold. */
  private allocate(capacity: number): void {
    const grow = <A extends Int32Array | Uint8Array | Float64Array>(old: A | undefined, make: (n: number) => A, fill = 0): A => {
      const a = make(capacity);
      if (fill !== 0) a.fill(fill);
      if (old !== undefined) a.set(old);
      return a;
    };
    this.bridgeOf = grow(this.bridgeOf as Int32Array | undefined, (n) => new Int32Array(n), -1);
    this.ifOf = grow(this.ifOf as Int32Array | undefined, (n) => new Int32Array(n), -1);
    this.up = grow(this.up as Uint8Array | undefined, (n) => new Uint8Array(n));
    this.runtime = grow(this.runtime as Uint8Array | undefined, (n) => new Uint8Array(n));
    this.rxFrames = grow(this.rxFrames as Float64Array | undefined, (n) => new Float64Array(n));
    this.rxBytes = grow(this.rxBytes as Float64Array | undefined, (n) => new Float64Array(n));
    this.rxNoBuffer = grow(this.rxNoBuffer as Float64Array | undefined, (n) => new Float64Array(n));
    this.txFrames = grow(this.txFrames as Float64Array | undefined, (n) => new Float64Array(n));
    this.txBytes = grow(this.txBytes as Float64Array | undefined, (n) => new Float64Array(n));
    this.txDrops = grow(this.txDrops as Float64Array | undefined, (n) => new Float64Array(n));
    this.linkDowns = grow(this.linkDowns as Float64Array | undefined, (n) => new Float64Array(n));
  }
}
