/**
 * InterfaceTable: the router's own interfaces (what `ip addr` shows on a node).
 *
 * A bridge with an address (cni0), an L3 port, and later a VXLAN device (flannel.1) are each
 * a router interface with a MAC, an optional IPv4 address/prefix and an MTU. Stages read the
 * typed arrays directly; names exist only for display.
 *
 * An L3 port added at run time gets an interface too, and gives it back when removed: its
 * index is then free (name '', no address, so no lookup or scan finds it) and the next
 * interface added takes it. The config's interfaces come first and are never removed, so
 * their indices are the same in every table a reload compiles.
 */

export const enum IfKind {
  BRIDGE = 0,
  PORT = 1,
  VXLAN = 2,
}

/** Interfaces one router may have (bridges with addresses, L3 ports, VXLAN devices). */
export const MAX_INTERFACES = 1024;

export class InterfaceTable {
  readonly names: string[] = [];
  readonly kind = new Uint8Array(MAX_INTERFACES);
  readonly macHi = new Uint32Array(MAX_INTERFACES);
  /** Low 32 MAC bits as int32, as macLoAt reads them from frames. */
  readonly macLo = new Int32Array(MAX_INTERFACES);
  readonly addr = new Uint32Array(MAX_INTERFACES);
  readonly prefixLen = new Int8Array(MAX_INTERFACES);
  readonly mtu = new Int32Array(MAX_INTERFACES);
  /** The bridge (BRIDGE) or port (PORT) behind the interface. */
  readonly target = new Int32Array(MAX_INTERFACES);

  get count(): number {
    return this.names.length;
  }

  /** Adds an interface (at the lowest free index); `prefixLen` -1 means no address. */
  add(name: string, kind: IfKind, macHi: number, macLo: number, addr: number, prefixLen: number, mtu: number, target: number): number {
    let i = this.names.indexOf('');
    if (i < 0) {
      i = this.names.length;
      if (i === MAX_INTERFACES) throw new Error(`more than ${MAX_INTERFACES} router interfaces`);
      this.names.push(name);
    } else {
      this.names[i] = name;
    }
    this.kind[i] = kind;
    this.macHi[i] = macHi;
    this.macLo[i] = macLo;
    this.addr[i] = addr;
    this.prefixLen[i] = prefixLen;
    this.mtu[i] = mtu;
    this.target[i] = target;
    return i;
  }

  /** Frees interface `i` (an L3 port removed at run time): no name, no address, no MAC. */
  remove(i: number): void {
    this.names[i] = '';
    this.kind[i] = 0;
    this.macHi[i] = 0;
    this.macLo[i] = 0;
    this.addr[i] = 0;
    this.prefixLen[i] = -1;
    this.mtu[i] = 0;
    this.target[i] = -1;
    while (this.names.length > 0 && this.names[this.names.length - 1] === '') this.names.pop();
  }

  indexOf(name: string): number {
    return name === '' ? -1 : this.names.indexOf(name);
  }

  hasAddress(i: number): boolean {
    return i >= 0 && this.prefixLen[i] >= 0;
  }

  /** The interface whose connected subnet holds `ip`, or -1. */
  connectedTo(ip: number): number {
    for (let i = 0; i < this.names.length; i++) {
      const len = this.prefixLen[i];
      if (len < 0) continue;
      const mask = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
      if (((ip & mask) >>> 0) === ((this.addr[i] & mask) >>> 0)) return i;
    }
    return -1;
  }
}
