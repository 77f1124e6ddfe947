/**
 * The base of the zero-copy wire views (EthernetView, Ipv4View, UdpView, ...).
 *
 * A view holds the bytes it is bound to — `buf[off .. off+len)` — and is rebound per packet,
 * never constructed per packet. Subclasses add `checkLen()`, which validates the header
 * against `len` once, and one getter/setter per field over the protected accessors below,
 * which take an offset from the start of the header. Like the helpers in bytes.ts they do no
 * bounds checks and allocate nothing: after `checkLen()` passes, no accessor can fail.
 *
 * Getters the zero-allocation decode path reads on every packet (EtherType, IPv4 length,
 * id, fragment word and addresses, UDP/TCP ports, lengths, sequence numbers) spell their
 * bytes out instead, marked `// hot`: going through `u16`/`u32` was measurably slower,
 * first for the call into bytes.ts across a module boundary, then, with the arithmetic
 * inlined here, because one accessor shared by every view class sees too many shapes of
 * `this.buf` for V8 to specialise (figures in docs/benchmarks.md, "Decoding").
 */

import { rd16, rd32, wr16, wr32 } from './bytes.ts';

export abstract class WireView {
  buf: Buffer = Buffer.alloc(0);
  off = 0;
  len = 0;

  bind(buf: Buffer, off: number, len: number): this {
    this.buf = buf;
    this.off = off;
    this.len = len;
    return this;
  }

  /** null when the bound bytes hold a complete, well-formed header; otherwise why not. */
  abstract checkLen(): string | null;

  /** The big-endian 16-bit field `at` bytes into the header. */
  protected u16(at: number): number {
    return rd16(this.buf, this.off + at);
  }
  protected setU16(at: number, v: number): void {
    wr16(this.buf, this.off + at, v);
  }
  /** The big-endian 32-bit field `at` bytes into the header, unsigned. */
  protected u32(at: number): number {
    return rd32(this.buf, this.off + at);
  }
  protected setU32(at: number, v: number): void {
    wr32(this.buf, this.off + at, v);
  }
}
