// flannel's etcd layout: network config defaults, subnet keys, lease JSON, allocation, subnet.env.
import { describe, expect, it } from 'vitest';
import {
  FlannelLayoutError,
  freeSubnets,
  leaseText,
  networkConfigText,
  parseLeaseAttrs,
  parseNetworkConfig,
  parseSubnetKey,
  pickSubnet,
  subnetEnvText,
  subnetFits,
  subnetKey,
  vtepMacFor,
} from '../../src/cluster/flannel-layout.ts';
import { formatCidr, formatIpv4, parseCidr } from '../../src/wire/ipv4-address.ts';

const show = (c: ReturnType<typeof parseNetworkConfig>) => ({
  network: formatCidr(c.network),
  subnetLen: c.subnetLen,
  min: formatIpv4(c.subnetMin),
  max: formatIpv4(c.subnetMax),
  backend: c.backendType,
  vni: c.vni,
  port: c.port,
});

describe("flannel's network config", () => {
  it("completes an administrator's minimal config as flanneld does", () => {
    expect(show(parseNetworkConfig('{"Network": "10.244.0.0/16", "Backend": {"Type": "vxlan"}}'))).toEqual({
      network: '10.244.0.0/16', subnetLen: 24, min: '10.244.1.0', max: '10.244.255.0', backend: 'vxlan', vni: 1, port: 0,
    });
    // Go's encoding/json: field names match case-insensitively; no Backend means udp.
    expect(show(parseNetworkConfig('{"network":"10.1.0.0/24"}'))).toEqual({
      network: '10.1.0.0/24', subnetLen: 26, min: '10.1.0.64', max: '10.1.0.192', backend: 'udp', vni: 1, port: 0,
    });
    expect(show(parseNetworkConfig('{"Network":"10.5.0.0/16","SubnetLen":20,"SubnetMin":"10.5.16.0","SubnetMax":"10.5.32.0","Backend":{"Type":"vxlan","VNI":4096,"Port":4789}}'))).toEqual({
      network: '10.5.0.0/16', subnetLen: 20, min: '10.5.16.0', max: '10.5.32.0', backend: 'vxlan', vni: 4096, port: 4789,
    });
  });

  it('refuses what CheckNetworkConfig refuses', () => {
    const msg = (t: string) => {
      try {
        parseNetworkConfig(t);
        return 'accepted';
      } catch (e) {
        expect(e).toBeInstanceOf(FlannelLayoutError);
        return (e as Error).message;
      }
    };
    expect(msg('not json')).toMatch(/^the network config is not JSON/);
    expect(msg('{}')).toBe('the network config has no Network (e.g. "10.244.0.0/16")');
    expect(msg('{"Network":"10.0.0.0/16","SubnetLen":31}')).toBe('SubnetLen must be less than /31');
    expect(msg('{"Network":"10.0.0.0/16","SubnetLen":17}')).toBe('the Network must be able to accommodate at least four subnets');
    expect(msg('{"Network":"10.0.0.0/29"}')).toBe('the Network is too small: the minimum useful prefix is /28');
    expect(msg('{"Network":"10.0.0.0/16","SubnetMin":"10.1.0.0"}')).toBe('SubnetMin is not in the range of the Network');
    expect(msg('{"Network":"10.0.0.0/16","SubnetMax":"10.0.3.128"}')).toBe('SubnetMax is not on a SubnetLen boundary: 10.0.3.128');
  });

  it('writes a config that reads back the same', () => {
    const text = networkConfigText(parseCidr('10.244.0.0/16'), 24, 1, 8472);
    expect(text).toBe('{"Network":"10.244.0.0/16","SubnetLen":24,"Backend":{"Type":"vxlan","VNI":1,"Port":8472}}');
    expect(show(parseNetworkConfig(text))).toMatchObject({ network: '10.244.0.0/16', subnetLen: 24, backend: 'vxlan', vni: 1, port: 8472 });
  });
});

describe("flannel's subnet keys and lease values", () => {
  it('keys are a.b.c.d-len, read from the end of a full key', () => {
    expect(subnetKey(parseCidr('10.244.5.0/24'))).toBe('10.244.5.0-24');
    expect(parseSubnetKey('/coreos.com/network/subnets/10.244.5.0-24')).toEqual(parseCidr('10.244.5.0/24'));
    expect(parseSubnetKey('/coreos.com/network/subnets/10.244.5.0-24&fc00::-64')).toEqual(parseCidr('10.244.5.0/24'));
    expect(parseSubnetKey('/coreos.com/network/subnets/garbage')).toBeUndefined();
    expect(parseSubnetKey('/coreos.com/network/subnets/10.244.5.0-40')).toBeUndefined();
    expect(parseSubnetKey('/coreos.com/network/subnets/10.244.300.0-24')).toBeUndefined();
  });

  it("a lease's value is Go's marshalling of LeaseAttrs with the vxlan BackendData", () => {
    const text = leaseText('192.168.50.11', 1, '0e:58:0a:f4:05:00');
    expect(text).toBe('{"PublicIP":"192.168.50.11","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"0e:58:0a:f4:05:00"}}');
    expect(parseLeaseAttrs(text)).toEqual({ publicIP: '192.168.50.11', backendType: 'vxlan', vtepMac: '0e:58:0a:f4:05:00', vni: 1 });
    // A lease written by an older flanneld: no VNI, upper-case MAC; a host-gw lease: no BackendData.
    expect(parseLeaseAttrs('{"PublicIP":"10.0.0.2","BackendType":"vxlan","BackendData":{"VtepMAC":"0E:00:00:00:00:02"}}')).toEqual({
      publicIP: '10.0.0.2', backendType: 'vxlan', vtepMac: '0e:00:00:00:00:02',
    });
    expect(parseLeaseAttrs('{"PublicIP":"10.0.0.3","BackendType":"host-gw"}')).toEqual({ publicIP: '10.0.0.3', backendType: 'host-gw' });
  });

  it('refuses lease values no peer can be made of', () => {
    expect(() => parseLeaseAttrs('[]')).toThrow('the lease is not a JSON object');
    expect(() => parseLeaseAttrs('{"BackendType":"vxlan"}')).toThrow('the lease has no PublicIP');
    expect(() => parseLeaseAttrs('{"PublicIP":"10.0.0"}')).toThrow("the lease's PublicIP '10.0.0' is not an IPv4 address");
    expect(() => parseLeaseAttrs('{"PublicIP":"10.0.0.2","BackendData":{"VtepMAC":"zz"}}')).toThrow("the lease's VtepMAC 'zz' is not a MAC address");
    expect(() => parseLeaseAttrs('{"PublicIP":"10.0.0.2","BackendData":{"VtepMAC":"01:00:5e:00:00:01"}}')).toThrow('is not a unicast MAC');
  });
});

describe('subnet allocation', () => {
  const cfg = parseNetworkConfig('{"Network":"10.244.0.0/16","SubnetLen":24,"Backend":{"Type":"vxlan"}}');

  it('skips taken and overlapping subnets, starting at SubnetMin, at most 100', () => {
    const taken = [parseCidr('10.244.1.0/24'), parseCidr('10.244.2.0/23')];
    const free = freeSubnets(cfg, taken).map(formatCidr);
    expect(free.slice(0, 2)).toEqual(['10.244.4.0/24', '10.244.5.0/24']);
    expect(free).toHaveLength(100);
    expect(free[99]).toBe('10.244.103.0/24');
  });

  it('picks one of the free subnets at random, and none when the range is full', () => {
    expect(formatCidr(pickSubnet(cfg, [], () => 0)!)).toBe('10.244.1.0/24');
    expect(formatCidr(pickSubnet(cfg, [], () => 0.999999)!)).toBe('10.244.100.0/24');
    const small = parseNetworkConfig('{"Network":"10.9.0.0/24","SubnetLen":26}');
    const all = freeSubnets(small, []);
    expect(all.map(formatCidr)).toEqual(['10.9.0.64/26', '10.9.0.128/26', '10.9.0.192/26']);
    expect(pickSubnet(small, all)).toBeUndefined();
  });

  it('a lease fits when its length and range agree with the config', () => {
    expect(subnetFits(cfg, parseCidr('10.244.7.0/24'))).toBe(true);
    expect(subnetFits(cfg, parseCidr('10.244.0.0/24'))).toBe(false);
    expect(subnetFits(cfg, parseCidr('10.244.7.0/25'))).toBe(false);
  });
});

describe('subnet.env and the VTEP MAC', () => {
  it("is flanneld's text: the subnet's first address, the MTU, masquerade", () => {
    expect(subnetEnvText(parseCidr('10.244.0.0/16'), parseCidr('10.244.5.0/24'), 1450, true)).toBe(
      'FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.5.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n',
    );
  });

  it('derives a locally administered unicast VTEP MAC from the subnet', () => {
    expect(vtepMacFor(parseCidr('10.244.5.0/24'))).toBe('0e:58:0a:f4:05:00');
    expect(vtepMacFor(parseCidr('192.168.0.0/24'))).toBe('0e:58:c0:a8:00:00');
  });
});
