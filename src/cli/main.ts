/**
 * The nodeplane command line: parses flags and hands each command to its own module.
 * Command modules are loaded lazily so `decode` does not pay for the dataplane. A reader of
 * stdout that goes away (`| head`) ends the output quietly, exit status 0 (stdout.ts).
 */
import { Command, CommanderError } from 'commander';
import { guardStdout } from './stdout.ts';
import { UserError } from '../user-error.ts';

guardStdout();

type Action = () => Promise<number | void>;

async function runAction(action: Action): Promise<void> {
  try {
    const code = await action();
    process.exitCode = code ?? 0;
  } catch (err) {
    if (err instanceof UserError) {
      process.stderr.write(`nodeplane: ${err.message}\n`);
      process.exitCode = err.exitCode;
      return;
    }
    throw err;
  }
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

const program = new Command();
program
  .name('nodeplane')
  .description(
    "A Kubernetes node's network dataplane in userspace: learning bridge, ARP, IPv4 routing and ICMP " +
      'on TAP devices, with pcap capture and deterministic offline replay.',
  )
  .version('0.1.0')
  .showHelpAfterError('(run nodeplane --help for usage)')
  .exitOverride();

program
  .command('run')
  .description('run the dataplane live on TAP devices until SIGINT/SIGTERM; SIGHUP reloads the config; manifest files are watched; with a cluster section, first leases a subnet through etcd (flannel\'s layout) and follows the other nodes\' leases')
  .requiredOption('--config <file>', 'configuration file (YAML or JSON)')
  .option('--capture <dir>', 'write a pcapng of every port (overrides capture.dir)')
  .option('--capture-stdout <port>', "stream one port's traffic (or 'all') as classic pcap to stdout")
  .option('--capture-fifo <path>', 'like --capture-stdout, but to a FIFO or file')
  .option('--capture-fifo-port <port>', 'port for --capture-fifo, or all', 'all')
  .option('--capture-max-mb <n>', 'rotate a capture file when it reaches N MB (like tcpdump -C)')
  .option('--capture-files <n>', 'keep at most N rotated files per capture (like tcpdump -W)')
  .option('--snaplen <n>', 'bytes kept of each captured frame (like tcpdump -s; overrides capture.snaplen)')
  .option('--capture-filter <expr>', "record only frames this tcpdump filter matches, e.g. 'icmp or arp' (compiled by libpcap)")
  .option('--capture-drops', "record every dropped frame on an interface 'drop' of the pcapng, stage and reason as its comment")
  .option('--capture-buffer <KiB>', 'records the pcapng writer may fall behind by before new ones are dropped and counted (like tcpdump -B; overrides capture.bufferKiB, default 32768)')
  .option('--realtime <prio>', 'run the packet thread under SCHED_FIFO at this priority, 1-99 (like chrt -f, that thread only): no wait behind other tasks, for the lowest latency')
  .option('--admin <socket>', 'admin unix socket path', '/run/nodeplane.sock')
  .option('--metrics <addr:port>', 'serve Prometheus metrics on GET /metrics (a bare port listens on 127.0.0.1)')
  .option('--no-offload', 'plain 1500-byte frames on the TAPs, no TCP segmentation offload (captures then show them; with offload, super-frames)')
  .option('--log-level <level>', 'pino log level', 'info')
  .action((opts) => runAction(async () => (await import('./run.ts')).runCommand(opts)));

program
  .command('replay')
  .description('run the dataplane offline: pcap files (or a live capture) in on ports, one pcap out per port; compare with golden pcaps')
  .requiredOption('--config <file>', 'configuration file (YAML or JSON)')
  .option('--in <port=pcap>', 'frames to receive on a port (repeatable)', collect, [])
  .option('--from-capture <pcapng>', 'a pcapng written by run --capture: its received frames, on their ports at their times')
  .option('--out <dir>', 'directory for <port>.pcap outputs')
  .option('--expect <dir>', 'compare each port\'s output with <dir>/<port>.pcap frame by frame; exit 1 on a difference')
  .option('--update', 'with --expect: write the outputs as the new golden files instead of comparing')
  .option('--expect-capture', 'compare each port\'s output with what the live run of --from-capture transmitted; exit 1 on a difference')
  .option('--settle <seconds>', 'virtual seconds to run on after the last input frame (default: 1; with --from-capture: until the capture ends)')
  .option('--seed <n>', 'seed of the random generator', '1')
  .option('--stats', 'print counters after the run')
  .option('--trace', 'print every frame\'s path through the stages, hop by hop (with nat or conntrack: its conntrack state and the translation applied)')
  .addHelpText(
    'after',
    '\nDifferences are printed per port: the frame number, its one-line decode, then every decoded field\n' +
      'that differs (expected, got) and the first differing byte. Live and offline runs differ where\n' +
      'timing decides (README, "Replaying a live capture").',
  )
  .action((opts) => runAction(async () => (await import('./replay.ts')).replayCommand(opts)));

program
  .command('decode')
  .description('decode a pcap or pcapng file, one frame a line')
  .argument('<pcap>', 'capture file (pcap µs/ns, either byte order, or pcapng)')
  .option('--json', 'one JSON object a line (SPEC section 5 fields)')
  .action((file, opts) => runAction(async () => (await import('./decode.ts')).decodeCommand(file, opts)));

program
  .command('check')
  .description('validate a configuration and print every problem with its location, and what its frame pool gives it (warning when too small)')
  .requiredOption('--config <file>', 'configuration file (YAML or JSON)')
  .action((opts) => runAction(async () => (await import('./check.ts')).checkCommand(opts)));

program
  .command('show')
  .description('show the state of a running dataplane through its admin socket')
  .addArgument(
    new Command().createArgument('<what>', 'what to show').choices(['fdb', 'neigh', 'routes', 'services', 'conntrack', 'ports', 'stats', 'graph']),
  )
  .option('--admin <socket>', 'admin unix socket path', '/run/nodeplane.sock')
  .option('--json', 'print JSON (conntrack: an array, one entry a line)')
  .option('--stats', 'conntrack: the counters of conntrack -S instead of the entries')
  .option('--proto <p>', 'conntrack: only this protocol (tcp, udp, icmp)')
  .option('--src <ip>', 'conntrack: only entries whose original source is this address')
  .option('--dst <ip>', 'conntrack: only entries whose original destination is this address')
  .addHelpText(
    'after',
    '\nconntrack prints one line per entry as conntrack -L does (protocol, seconds left, TCP state,\n' +
      'original tuple and counters, [UNREPLIED], reply tuple and counters, [ASSURED], mark), streamed\n' +
      'from the dataplane in chunks, then on stderr how many entries were shown.\n' +
      'services prints each Service port (namespace/name:port) with its type, affinity and traffic\n' +
      'policies, its frontends (clusterIP, nodePort on each node address, externalIP, loadBalancer)\n' +
      'and its endpoints with their state (ready, terminating, local) and active connections.',
  )
  .action((what, opts) => runAction(async () => (await import('./show.ts')).showCommand(what, opts)));

const conntrack = program.command('conntrack').description("a running dataplane's connection tracking table, like conntrack-tools");

conntrack
  .command('flush')
  .description('delete tracked connections (all, or those matching the filters), like conntrack -F / -D')
  .option('--admin <socket>', 'admin unix socket path', '/run/nodeplane.sock')
  .option('--proto <p>', 'only this protocol (tcp, udp, icmp)')
  .option('--src <ip>', 'only entries whose original source is this address')
  .option('--dst <ip>', 'only entries whose original destination is this address')
  .action((opts) => runAction(async () => (await import('./conntrack.ts')).conntrackFlush(opts)));

conntrack
  .command('events')
  .description('print connection tracking events (NEW, UPDATE, DESTROY) as they happen, like conntrack -E')
  .option('--admin <socket>', 'admin unix socket path', '/run/nodeplane.sock')
  .option('--proto <p>', 'only this protocol (tcp, udp, icmp)')
  .option('--src <ip>', 'only entries whose original source is this address')
  .option('--dst <ip>', 'only entries whose original destination is this address')
  .option('--count <n>', 'stop after N events')
  .option('--seconds <s>', 'stop after S seconds')
  .option('--json', 'one JSON object a line')
  .action((opts) => runAction(async () => (await import('./conntrack.ts')).conntrackEvents(opts)));

const manifests = program.command('manifests').description("a running dataplane's Kubernetes manifests (the config's manifests: files and directories)");

manifests
  .command('reload')
  .description('read the manifest files again now and apply what changed (they are also watched, and read again on SIGHUP); exit 1 if a file is refused')
  .option('--admin <socket>', 'admin unix socket path', '/run/nodeplane.sock')
  .option('--json', 'print the report as JSON')
  .action((opts) => runAction(async () => (await import('./manifests.ts')).manifestsReload(opts)));

const port = program.command('port').description("add or remove ports of a running dataplane (a pod's TAP on a bridge, or an L3 port), through its admin socket");

port
  .command('add')
  .description("add a TAP port: on a bridge (a pod's interface) or routed with an address; with --netns, moved into that network namespace as IF, addressed, up, with a default route (what the CNI bridge plugin does with a veth)")
  .argument('<name>', "the TAP device's name in nodeplane's namespace (at most 15 bytes), the port's name")
  .option('--bridge <br>', 'a member of this bridge (an L2 port)')
  .option('--address <cidr>', "an L3 port: the router's address on it, with prefix")
  .option('--mtu <n>', 'MTU of the device (default 1500)')
  .option('--mac <mac>', "MAC of the device's kernel side (the pod's interface; default 0a:58 + the --ip address, else random)")
  .option('--netns <path>', 'move the device into this network namespace (a path: /run/netns/NAME, /proc/PID/ns/net)')
  .option('--ifname <if>', 'with --netns: its name there (e.g. eth0)')
  .option('--ip <cidr>', "with --netns: its address there; also the address whose flows and neighbour entries go with the port")
  .option('--gateway <ip>', "with --netns: the default route's next hop (default: the bridge's address, when --ip is in its subnet)")
  .option('--route <cidr>', 'with --netns: a further destination routed through the gateway (repeatable)', collect, [])
  .option('--owner <text>', 'who asked, kept with the port and shown by show ports')
  .option('--admin <socket>', 'admin unix socket path', '/run/nodeplane.sock')
  .option('--json', "print the dataplane's answer as JSON")
  .addHelpText(
    'after',
    '\nThe port takes the lowest free port number above the config\'s, up, counters at zero. A reload\n' +
      '(SIGHUP) leaves ports added here alone; they go when nodeplane stops (their devices with it).',
  )
  .action((name, opts) => runAction(async () => (await import('./port.ts')).portAdd(name, opts)));

port
  .command('del')
  .description('remove a port added with port add (not one of the config), with what belonged to it: FDB entries learned on it, neighbours reached through it, conntrack entries of its addresses; its device goes too')
  .argument('<name>', 'the port')
  .option('--admin <socket>', 'admin unix socket path', '/run/nodeplane.sock')
  .option('--json', 'print what was flushed as JSON')
  .action((name, opts) => runAction(async () => (await import('./port.ts')).portDel(name, opts)));

program
  .command('trace')
  .description('follow the next frames of a running dataplane through its stages, hop by hop (with nat or conntrack: each frame\'s conntrack state and the translation applied)')
  .option('--admin <socket>', 'admin unix socket path', '/run/nodeplane.sock')
  .option('--count <n>', 'frames to follow', '10')
  .option('--seconds <s>', 'give up after this long', '10')
  .option('--match <expr>', "follow only frames this tcpdump filter matches (e.g. 'icmp and host 10.244.2.2'); an expression libpcap cannot compile is matched as text in the one-line decode (e.g. 'ICMP')")
  .option('--json', 'print JSON')
  .action((opts) => runAction(async () => (await import('./trace.ts')).traceCommand(opts)));

const extcap = program
  .command('extcap')
  .description("Wireshark's extcap interface to a running nodeplane: lists its ports (and drop) and captures from them live (Wireshark runs it; install it with nodeplane extcap install)")
  .option('--admin <socket>', 'admin unix socket path', '/run/nodeplane.sock')
  .option('--extcap-interfaces', 'list the interfaces: nodeplane-<port> for each port, and nodeplane-drop')
  .option('--extcap-version <version>', "Wireshark's version (accepted, not used)")
  .option('--extcap-interface <name>', 'the interface the other options are about')
  .option('--extcap-dlts', 'list its link types (Ethernet)')
  .option('--extcap-config', 'list its options (admin socket, snapshot length, filter)')
  .option('--extcap-capture-filter <expr>', "Wireshark's capture filter (tcpdump syntax); alone, checks it")
  .option('--capture', 'stream pcapng from the running nodeplane into --fifo until stopped')
  .option('--fifo <path>', 'the FIFO Wireshark reads')
  .option('--snaplen <n>', 'bytes kept of each frame (1..262144)')
  .option('--filter <expr>', 'tcpdump filter run by nodeplane (with --extcap-capture-filter, both apply)')
  .allowUnknownOption()
  .action((opts) => runAction(async () => (await import('./extcap.ts')).extcapCommand(opts)));

extcap
  .command('install')
  .description("install a launcher for the extcap into Wireshark's personal extcap folder (tshark -G folders), or --dir")
  .option('--dir <dir>', 'the folder to install into')
  .addHelpText('after', "\nThe launcher's admin socket is extcap's --admin (nodeplane extcap install --admin SOCKET;\ndefault /run/nodeplane.sock); Wireshark's options for an interface can give another.")
  .action((opts: { dir?: string }) =>
    runAction(async () => (await import('./extcap.ts')).extcapInstall({ dir: opts.dir, admin: (extcap.opts() as { admin: string }).admin })),
  );

program
  .command('demo')
  .description('build a lab of pods in network namespaces, run nodeplane between them, send traffic, clean up (root)')
  .option('--keep', 'leave the lab up until Ctrl-C')
  .option('--out <dir>', 'where captures go', 'nodeplane-demo')
  .option('--nodes <n>', 'a cluster of n nodes (2-9) on etcd with the VXLAN overlay between them, instead of one node (needs etcd-server)', '1')
  .action((opts: { keep?: boolean; out: string; nodes: string }) =>
    runAction(async () => {
      const nodes = Number(opts.nodes);
      if (opts.nodes !== '1') return (await import('./demo-nodes.ts')).demoNodesCommand({ ...opts, nodes });
      return (await import('./demo.ts')).demoCommand(opts);
    }),
  );

// No top-level await: the packed command is CommonJS (scripts/build-cli.mjs).
program.parseAsync(process.argv).catch((err: unknown) => {
  if (err instanceof CommanderError) {
    process.exitCode = err.exitCode;
  } else {
    throw err;
  }
});
