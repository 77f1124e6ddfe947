/**
 * TCP connection tracking: flag classes, and whole conversations through Conntrack.track
 * checked state by state with Linux's timeouts (kube-proxy's for ESTABLISHED and
 * CLOSE_WAIT): handshake, data, FIN from either side, simultaneous close, RST, SYN
 * retransmission, the INVALID segments, reopening after TIME_WAIT, a stale entry resynced,
 * a simultaneous open, and the challenge ACK that must not close LAST_ACK.
 */
import { describe, expect, it } from 'vitest';
import { Conntrack, CtVerdict, CT_ASSURED, CT_SEEN_REPLY } from '../../src/tables/conntrack.ts';
import { TCP_ACK, TCP_CWR, TCP_ECE, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN, TCP_URG, TcpClass, tcpFlagClass, TCP_STATE_NAMES } from '../../src/tables/conntrack-tcp.ts';

const TCP = 6;
const T0 = 1_000_000_000_000;
const CLIENT = 0x0af40102;
const SERVER = 0x0af40203;
const SYN = TCP_SYN;
const SYNACK = TCP_SYN | TCP_ACK;
const ACK = TCP_ACK;
const FIN = TCP_FIN | TCP_ACK;
const RST = TCP_RST;

/** A TCP conversation between CLIENT:40000 and SERVER:80 through one table. */
class Conversation {
  readonly ct: Conntrack;
  ref = -1;
  constructor(ct = new Conntrack({ max: 16 })) {
    this.ct = ct;
    ct.nowUs = T0;
  }
  /** Sends a segment from the client (`c`) or the server (`s`); returns the verdict name. */
  send(from: 'c' | 's', flags: number, len = 60): string {
    const ct = this.ct;
    const ref = from === 'c' ? ct.track(TCP, CLIENT, SERVER, 40000, 80, flags, len) : ct.track(TCP, SERVER, CLIENT, 80, 40000, flags, len);
    if (ref >= 0) this.ref = ref;
    return ['INVALID', 'NEW', 'ESTABLISHED', 'RELATED', 'REOPEN', 'FULL', 'UNTRACKED'][ct.verdict];
  }
  get id(): number {
    return this.ref >> 1;
  }
  get state(): string {
    return TCP_STATE_NAMES[this.ct.tcpStateOf(this.id)];
  }
  /** Seconds until the entry expires. */
  get timeout(): number {
    return (this.ct.deadlineOf(this.id) - this.ct.nowUs) / 1e6;
  }
  get assured(): boolean {
    return (this.ct.statusOf(this.id) & CT_ASSURED) !== 0;
  }
  wait(seconds: number): void {
    this.ct.nowUs += seconds * 1e6;
  }
  /** Sends, then returns [verdict, state, timeout]. */
  step(from: 'c' | 's', flags: number): [string, string, number] {
    const v = this.send(from, flags);
    return [v, this.state, this.timeout];
  }
}

function established(): Conversation {
  const c = new Conversation();
  c.send('c', SYN);
  c.send('s', SYNACK);
  c.send('c', ACK);
  expect(c.state).toBe('ESTABLISHED');
  return c;
}

describe('TCP flag classes', () => {
  it('classifies as Linux: RST first, then SYN, FIN, ACK; PSH, ECE and CWR do not matter', () => {
    expect(tcpFlagClass(SYN)).toBe(TcpClass.SYN);
    expect(tcpFlagClass(SYN | TCP_ECE | TCP_CWR)).toBe(TcpClass.SYN);
    expect(tcpFlagClass(SYNACK)).toBe(TcpClass.SYNACK);
    expect(tcpFlagClass(FIN | TCP_PSH)).toBe(TcpClass.FIN);
    expect(tcpFlagClass(ACK | TCP_PSH | TCP_URG)).toBe(TcpClass.ACK);
    expect(tcpFlagClass(RST | TCP_ACK)).toBe(TcpClass.RST);
  });

  it('rejects combinations no stack sends', () => {
    for (const f of [0, TCP_FIN, TCP_SYN | TCP_FIN, TCP_SYN | TCP_RST, TCP_RST | TCP_FIN | TCP_ACK, TCP_PSH, TCP_URG]) expect(tcpFlagClass(f)).toBe(-1);
  });
});

describe('TCP conversations', () => {
  it('handshake: SYN_SENT 120 s, SYN_RECV 60 s, ESTABLISHED 86400 s and ASSURED at the ACK of the SYN-ACK', () => {
    const c = new Conversation();
    expect(c.step('c', SYN)).toEqual(['NEW', 'SYN_SENT', 120]);
    expect(c.assured).toBe(false);
    c.wait(3);
    expect(c.step('c', SYN)).toEqual(['NEW', 'SYN_SENT', 120]); // retransmitted SYN refreshes
    expect(c.step('s', SYNACK)).toEqual(['ESTABLISHED', 'SYN_RECV', 60]);
    expect(c.assured).toBe(false);
    expect(c.ct.statusOf(c.id) & CT_SEEN_REPLY).toBe(CT_SEEN_REPLY);
    expect(c.step('s', SYNACK)).toEqual(['ESTABLISHED', 'SYN_RECV', 60]); // retransmitted SYN-ACK: ignored
    expect(c.step('c', ACK)).toEqual(['ESTABLISHED', 'ESTABLISHED', 86400]);
    expect(c.assured).toBe(true);
    c.wait(100);
    expect(c.step('s', ACK | TCP_PSH)).toEqual(['ESTABLISHED', 'ESTABLISHED', 86400]);
    expect(c.ct.packetsOf(c.id << 1)).toBe(3);
    // The ignored SYN-ACK is not counted (Linux accounts a segment only when it applies it).
    expect(c.ct.packetsOf((c.id << 1) | 1)).toBe(2);
  });

  it('the client closes: FIN_WAIT 120, CLOSE_WAIT 3600, LAST_ACK 30, TIME_WAIT 120, then gone', () => {
    const c = established();
    expect(c.step('c', FIN)).toEqual(['ESTABLISHED', 'FIN_WAIT', 120]);
    expect(c.step('s', ACK)).toEqual(['ESTABLISHED', 'CLOSE_WAIT', 3600]);
    expect(c.step('s', ACK | TCP_PSH)).toEqual(['ESTABLISHED', 'CLOSE_WAIT', 3600]);
    expect(c.step('s', FIN)).toEqual(['ESTABLISHED', 'LAST_ACK', 30]);
    expect(c.step('c', ACK)).toEqual(['ESTABLISHED', 'TIME_WAIT', 120]);
    c.wait(119.999);
    expect(c.ct.lookup(TCP, CLIENT, SERVER, 40000, 80)).toBe(c.ref & ~1);
    c.wait(0.001);
    expect(c.ct.lookup(TCP, CLIENT, SERVER, 40000, 80)).toBe(-1);
  });

  it('the server closes first: the same states from the other side', () => {
    const c = established();
    expect(c.step('s', FIN)).toEqual(['ESTABLISHED', 'FIN_WAIT', 120]);
    expect(c.step('c', ACK)).toEqual(['ESTABLISHED', 'CLOSE_WAIT', 3600]);
    expect(c.step('c', FIN)).toEqual(['ESTABLISHED', 'LAST_ACK', 30]);
    expect(c.step('c', FIN)).toEqual(['ESTABLISHED', 'LAST_ACK', 30]); // retransmitted FIN
    expect(c.step('s', ACK)).toEqual(['ESTABLISHED', 'TIME_WAIT', 120]);
  });

  it('a simultaneous close: FIN both ways, LAST_ACK, then TIME_WAIT', () => {
    const c = established();
    expect(c.step('c', FIN)[1]).toBe('FIN_WAIT');
    expect(c.step('s', FIN)[1]).toBe('LAST_ACK');
    expect(c.step('c', ACK)[1]).toBe('TIME_WAIT');
  });

  it('an RST closes with 10 s; the entry is gone after them', () => {
    const c = established();
    expect(c.step('s', RST)).toEqual(['ESTABLISHED', 'CLOSE', 10]);
    expect(c.assured).toBe(true);
    c.wait(10);
    expect(c.ct.lookup(TCP, SERVER, CLIENT, 80, 40000)).toBe(-1);
    expect(c.ct.count).toBe(0);
  });

  it('an RST that is the only answer to a SYN kills the entry at once', () => {
    const c = new Conversation();
    c.send('c', SYN);
    expect(c.send('s', RST | TCP_ACK)).toBe('ESTABLISHED');
    expect(c.ct.lookup(TCP, CLIENT, SERVER, 40000, 80)).toBe(-1);
    expect(c.ct.count).toBe(0);
  });

  it('INVALID: an ACK or a FIN before the SYN-ACK, a SYN-ACK from the client, a server SYN after SYN_RECV, a bad flag mix', () => {
    const c = new Conversation();
    c.send('c', SYN);
    const before = c.ct.deadlineOf(c.id);
    c.wait(5);
    expect(c.step('c', ACK)).toEqual(['INVALID', 'SYN_SENT', 115]);
    expect(c.ct.deadlineOf(c.id)).toBe(before); // no refresh
    expect(c.send('c', FIN)).toBe('INVALID');
    expect(c.send('c', SYNACK)).toBe('INVALID');
    expect(c.send('c', SYN | TCP_FIN)).toBe('INVALID');
    expect(c.ct.invalid).toBe(4);
    expect(c.step('s', SYNACK)[1]).toBe('SYN_RECV');
    expect(c.send('s', SYN)).toBe('INVALID');
    expect(c.state).toBe('SYN_RECV');
    expect(c.ct.invalid).toBe(5);
    expect(c.ct.packetsOf(c.id << 1)).toBe(1); // invalid segments are not counted on the entry
  });

  it('a reply-side ACK while SYN_SENT is ignored (half-open connection), not invalid', () => {
    const c = new Conversation();
    c.send('c', SYN);
    expect(c.step('s', ACK)).toEqual(['ESTABLISHED', 'SYN_SENT', 120]);
    expect(c.ct.invalid).toBe(0);
  });

  it('a SYN after TIME_WAIT reopens: the old entry dies and a new one starts', () => {
    const c = established();
    c.send('c', FIN);
    c.send('s', FIN);
    c.send('c', ACK);
    const oldId = c.id;
    expect(c.state).toBe('TIME_WAIT');
    expect(c.step('c', SYN)).toEqual(['NEW', 'SYN_SENT', 120]);
    expect(c.id).not.toBe(oldId);
    expect(c.ct.count).toBe(1);
    expect(c.assured).toBe(false);
    expect(c.ct.created).toBe(2);
  });

  it('a SYN after an RST from the same side reopens too', () => {
    const c = established();
    c.send('c', RST);
    expect(c.step('c', SYN)).toEqual(['NEW', 'SYN_SENT', 120]);
    expect(c.ct.created).toBe(2);
  });

  it('a SYN in ESTABLISHED is ignored; a SYN-ACK answering it resyncs the entry to SYN_RECV', () => {
    const c = established();
    c.wait(10);
    expect(c.step('c', SYN)).toEqual(['ESTABLISHED', 'ESTABLISHED', 86390]);
    expect(c.step('s', SYNACK)).toEqual(['ESTABLISHED', 'SYN_RECV', 60]);
    expect(c.step('c', ACK)).toEqual(['ESTABLISHED', 'ESTABLISHED', 86400]);
  });

  it('a simultaneous open: SYN both ways, SYN_SENT2, then SYN_RECV and ESTABLISHED', () => {
    const c = new Conversation();
    c.send('c', SYN);
    expect(c.step('s', SYN)).toEqual(['ESTABLISHED', 'SYN_SENT2', 120]);
    expect(c.step('c', SYNACK)).toEqual(['ESTABLISHED', 'SYN_RECV', 60]);
    expect(c.step('s', ACK)).toEqual(['ESTABLISHED', 'ESTABLISHED', 86400]);
  });

  it('in LAST_ACK, the challenge ACK drawn by an ignored SYN does not bring TIME_WAIT; the real last ACK does', () => {
    const c = established();
    c.send('c', FIN);
    c.send('s', FIN);
    expect(c.state).toBe('LAST_ACK');
    expect(c.step('c', SYN)[1]).toBe('LAST_ACK');
    expect(c.step('s', ACK)[1]).toBe('LAST_ACK');
    expect(c.step('c', ACK)[1]).toBe('TIME_WAIT');
  });

  it('takes configured timeouts', () => {
    const c = new Conversation(new Conntrack({ max: 4, timeouts: { tcpEstablished: 600, tcpSynSent: 5 } }));
    expect(c.step('c', SYN)[2]).toBe(5);
    c.send('s', SYNACK);
    expect(c.step('c', ACK)[2]).toBe(600);
  });

  it('gives an unreplied SYN 120 s, then forgets it', () => {
    const c = new Conversation();
    c.send('c', SYN);
    c.wait(120);
    expect(c.ct.lookup(TCP, CLIENT, SERVER, 40000, 80)).toBe(-1);
    expect(c.ct.track(TCP, CLIENT, SERVER, 40000, 80, ACK, 60)).toBe(-1);
    expect(c.ct.verdict).toBe(CtVerdict.INVALID);
  });
});
