/**
 * The packet graph of one dataplane, written out in one place: every stage, and which stage
 * each named output feeds. Order matters only for speed: a frame usually moves forward
 * through the list within one dispatch round.
 *
 * The five hook stages (prerouting, input, output, postrouting, bridge-ip4) are where Linux has its
 * netfilter hooks; conntrack and NAT register handlers with them (core/hook.ts). Every IPv4
 * packet that leaves through a router interface crosses postrouting once, before
 * fragmentation and neighbour resolution.
 *
 *   ethernet-input ─bridge→ bridge-forward ─tx→ port-output
 *                 │                        ├ip4→ bridge-ip4 ─tx→ port-output   (conntrack on)
 *                 └─l3────→ l3-input       └router→ l3-input
 *   l3-input ─arp→ arp-input ─reply→ interface-output, ─neighbour→ neighbour-output
 *            └ip4→ ip4-input ─prerouting→ prerouting ─route→ ip4-lookup
 *                            └route→ ip4-lookup   (while prerouting has nothing to do)
 *                                           └defrag→ ip4-reassemble ─prerouting→ prerouting (conntrack on)
 *   ip4-lookup ─local→ input ─local→ ip4-local ─icmp→ icmp-local ─output→ output
 *              │                            ├tcp→ tcp-reset ─output→ output
 *              │                            ├reassemble→ ip4-reassemble ─local→ ip4-local
 *              │                            └error→ icmp-error
 *              ├forward→ ip4-forward ─postrouting→ postrouting
 *              │                     ├neighbour→ neighbour-output   (while postrouting has nothing to do)
 *              │                     └error→ icmp-error
 *              └error→ icmp-error ─output→ output
 *   output ─route→ ip4-output ─postrouting→ postrouting
 *   postrouting ─neighbour→ neighbour-output
 *               └fragment→ ip4-fragment ─neighbour→ neighbour-output
 *   neighbour-output ─output/arp→ interface-output ─bridge→ bridge-forward, ─tx→ port-output
 *                    └error→ icmp-error                ├vxlan→ vxlan-encap ─output→ output, ─tx→ port-output
 *                                                      └segment→ tcp-segment ─segment→ vxlan-encap
 *   ip4-local ─vxlan→ vxlan-decap ─ip4→ ip4-input, ─l3→ l3-input   (the inner frame, as received on flannel.1)
 */
import { Graph } from '../core/graph.ts';
import { ArpInput } from '../stages/arp-input.ts';
import { BridgeForward } from '../stages/bridge-forward.ts';
import { BridgeIp4Hook } from '../stages/bridge-ip4.ts';
import { EthernetInput } from '../stages/ethernet-input.ts';
import { IcmpError } from '../stages/icmp-error.ts';
import { InputHook } from '../stages/input.ts';
import { InterfaceOutput } from '../stages/interface-output.ts';
import { Ip4Forward } from '../stages/ip4-forward.ts';
import { Ip4Fragment } from '../stages/ip4-fragment.ts';
import { Ip4Input } from '../stages/ip4-input.ts';
import { Ip4Local } from '../stages/ip4-local.ts';
import { Ip4Lookup } from '../stages/ip4-lookup.ts';
import { Ip4Reassemble } from '../stages/ip4-reassemble.ts';
import { IcmpLocal } from '../stages/icmp-local.ts';
import { TcpReset } from '../stages/tcp-reset.ts';
import { Ip4Output } from '../stages/ip4-output.ts';
import { L3Input } from '../stages/l3-input.ts';
import { NeighbourOutput } from '../stages/neighbour-output.ts';
import { OutputHook } from '../stages/output.ts';
import { PortOutput } from '../stages/port-output.ts';
import { PostroutingHook } from '../stages/postrouting.ts';
import { PreroutingHook } from '../stages/prerouting.ts';
import { TcpSegment } from '../stages/tcp-segment.ts';
import { VxlanDecap } from '../stages/vxlan-decap.ts';
import { VxlanEncap } from '../stages/vxlan-encap.ts';
import { VxlanSocketTx } from '../stages/vxlan-socket-tx.ts';
import type { Context } from '../stages/context.ts';

export interface Stages {
  ethernetInput: EthernetInput;
  bridgeForward: BridgeForward;
  bridgeIp4: BridgeIp4Hook;
  l3Input: L3Input;
  arpInput: ArpInput;
  ip4Input: Ip4Input;
  prerouting: PreroutingHook;
  ip4Lookup: Ip4Lookup;
  input: InputHook;
  ip4Local: Ip4Local;
  ip4Reassemble: Ip4Reassemble;
  vxlanDecap: VxlanDecap;
  icmpLocal: IcmpLocal;
  tcpReset: TcpReset;
  ip4Forward: Ip4Forward;
  icmpError: IcmpError;
  output: OutputHook;
  ip4Output: Ip4Output;
  postrouting: PostroutingHook;
  ip4Fragment: Ip4Fragment;
  neighbourOutput: NeighbourOutput;
  interfaceOutput: InterfaceOutput;
  tcpSegment: TcpSegment;
  vxlanEncap: VxlanEncap;
  vxlanSocketTx: VxlanSocketTx;
  portOutput: PortOutput;
}

export function buildGraph(ctx: Context): { graph: Graph; stages: Stages } {
  const graph = new Graph();
  const s: Stages = {
    ethernetInput: graph.add(new EthernetInput(ctx)),
    bridgeForward: graph.add(new BridgeForward(ctx)),
    bridgeIp4: graph.add(new BridgeIp4Hook(ctx)),
    l3Input: graph.add(new L3Input(ctx)),
    arpInput: graph.add(new ArpInput(ctx)),
    ip4Input: graph.add(new Ip4Input(ctx)),
    prerouting: graph.add(new PreroutingHook(ctx)),
    ip4Lookup: graph.add(new Ip4Lookup(ctx)),
    input: graph.add(new InputHook(ctx)),
    ip4Local: graph.add(new Ip4Local(ctx)),
    ip4Reassemble: graph.add(new Ip4Reassemble(ctx)),
    vxlanDecap: graph.add(new VxlanDecap(ctx)),
    icmpLocal: graph.add(new IcmpLocal(ctx)),
    tcpReset: graph.add(new TcpReset(ctx)),
    ip4Forward: graph.add(new Ip4Forward(ctx)),
    icmpError: graph.add(new IcmpError(ctx)),
    output: graph.add(new OutputHook(ctx)),
    ip4Output: graph.add(new Ip4Output(ctx)),
    postrouting: graph.add(new PostroutingHook(ctx)),
    ip4Fragment: graph.add(new Ip4Fragment(ctx)),
    neighbourOutput: graph.add(new NeighbourOutput(ctx)),
    interfaceOutput: graph.add(new InterfaceOutput(ctx)),
    tcpSegment: graph.add(new TcpSegment(ctx)),
    vxlanEncap: graph.add(new VxlanEncap(ctx)),
    vxlanSocketTx: graph.add(new VxlanSocketTx(ctx)),
    portOutput: graph.add(new PortOutput(ctx)),
  };
  s.ethernetInput.connect({ bridge: s.bridgeForward, l3: s.l3Input });
  s.bridgeForward.connect({ tx: s.portOutput, ip4: s.bridgeIp4, router: s.l3Input });
  s.bridgeIp4.connect({ tx: s.portOutput });
  s.l3Input.connect({ arp: s.arpInput, ip4: s.ip4Input });
  s.arpInput.connect({ reply: s.interfaceOutput, neighbour: s.neighbourOutput });
  s.ip4Input.connect({ prerouting: s.prerouting, route: s.ip4Lookup });
  s.prerouting.connect({ route: s.ip4Lookup, defrag: s.ip4Reassemble });
  s.ip4Lookup.connect({ local: s.input, vxlan: s.vxlanDecap, forward: s.ip4Forward, error: s.icmpError });
  s.input.connect({ local: s.ip4Local });
  s.ip4Local.connect({ reassemble: s.ip4Reassemble, vxlan: s.vxlanDecap, icmp: s.icmpLocal, tcp: s.tcpReset, error: s.icmpError });
  s.ip4Reassemble.connect({ local: s.ip4Local, prerouting: s.prerouting });
  s.vxlanDecap.connect({ ip4: s.ip4Input, l3: s.l3Input });
  s.icmpLocal.connect({ output: s.output });
  s.tcpReset.connect({ output: s.output });
  s.ip4Forward.connect({ postrouting: s.postrouting, neighbour: s.neighbourOutput, error: s.icmpError });
  s.icmpError.connect({ output: s.output });
  s.output.connect({ route: s.ip4Output });
  s.ip4Output.connect({ postrouting: s.postrouting });
  s.postrouting.connect({ neighbour: s.neighbourOutput, fragment: s.ip4Fragment });
  s.ip4Fragment.connect({ neighbour: s.neighbourOutput });
  s.neighbourOutput.connect({ output: s.interfaceOutput, arp: s.interfaceOutput, error: s.icmpError });
  s.interfaceOutput.connect({ bridge: s.bridgeForward, tx: s.portOutput, vxlan: s.vxlanEncap, segment: s.tcpSegment });
  s.tcpSegment.connect({ segment: s.vxlanEncap });
  s.vxlanEncap.connect({ output: s.output, tx: s.portOutput, socket: s.vxlanSocketTx });
  s.vxlanSocketTx.connect({});
  s.vxlanEncap.watchHooks(s.output, s.postrouting);
  s.ip4Lookup.watchInputHook(s.input);
  s.ip4Input.watchPrerouting(s.prerouting);
  s.ip4Forward.watchPostrouting(s.postrouting);
  s.portOutput.connect({});
  graph.verify();
  return { graph, stages: s };
}
