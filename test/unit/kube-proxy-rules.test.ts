/**
 * The kube-proxy rule generator the kernel twin loads (test/e2e/kube-proxy-rules.ts): chain
 * names as kube-proxy hashes them (values from kube-proxy's own tests and every cluster's
 * `kubernetes` Service), and the rules for the policies the differential test relies on.
 */
import { describe, expect, it } from 'vitest';
import { chainNames, kubeProxyRules, type KubeService } from '../e2e/kube-proxy-rules.ts';

const NODE = { nodeName: 'n1', clusterCIDR: '10.244.0.0/16' };

function svc(fields: Partial<KubeService>): KubeService {
  return {
    name: 'web',
    namespace: 'default',
    type: 'ClusterIP',
    clusterIP: '10.96.0.10',
    externalIPs: [],
    sessionAffinity: 'None',
    sessionAffinityTimeoutSeconds: 10800,
    externalTrafficPolicy: 'Cluster',
    ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 8080 }],
    endpoints: [],
    ...fields,
  };
}

/** The rules of one chain, in order, without the "-A CHAIN" prefix. */
function chain(restore: string, name: string): string[] {
  return restore
    .split('\n')
    .filter((l) => l.startsWith(`-A ${name} `))
    .map((l) => l.slice(`-A ${name} `.length));
}

describe('kube-proxy rules for the kernel twin', () => {
  it('names chains as kube-proxy does: base32 of sha256 of the port name and protocol (and endpoint)', () => {
    expect(chainNames.svc('default/kubernetes:https', 'tcp')).toBe('KUBE-SVC-NPX46M4PTMTKRN6Y');
    expect(chainNames.svc('ns1/svc1:p80', 'tcp')).toBe('KUBE-SVC-XPGD46QRK7WJZT7O');
    expect(chainNames.sep('ns1/svc1:p80', 'tcp', '10.180.0.1:80')).toBe('KUBE-SEP-SXIVWICOYRO3J4NJ');
  });

  it('a ClusterIP with three endpoints: masquerade from outside the cluster CIDR, then 1/3, 1/2, the rest', () => {
    const s = svc({ endpoints: ['10.244.1.2', '10.244.1.3', '10.244.2.2'].map((ip) => ({ ip, ready: true, nodeName: 'n1' })) });
    const { restore } = kubeProxyRules([s], NODE);
    const name = chainNames.svc('default/web:http', 'tcp');
    expect(chain(restore, 'KUBE-SERVICES')[0]).toBe(`-m comment --comment "default/web:http cluster IP" -m tcp -p tcp -d 10.96.0.10 --dport 80 -j ${name}`);
    const rules = chain(restore, name);
    expect(rules[0]).toMatch(/ ! -s 10\.244\.0\.0\/16 -j KUBE-MARK-MASQ$/);
    expect(rules.slice(1).map((r) => / --probability ([\d.]+)/.exec(r)?.[1] ?? 'rest')).toEqual(['0.3333333333', '0.5000000000', 'rest']);
    const sep = chainNames.sep('default/web:http', 'tcp', '10.244.1.3:8080');
    expect(chain(restore, sep)).toEqual([
      '-m comment --comment default/web:http -s 10.244.1.3 -j KUBE-MARK-MASQ',
      '-m comment --comment default/web:http -m tcp -p tcp -j DNAT --to-destination 10.244.1.3:8080',
    ]);
    expect(chain(restore, 'KUBE-SERVICES').at(-1)).toMatch(/-m addrtype --dst-type LOCAL -j KUBE-NODEPORTS$/);
  });

  it('no endpoints: no nat rules for the Service, REJECT in filter for the ClusterIP and the NodePort', () => {
    const s = svc({ type: 'NodePort', ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 8080, nodePort: 30080 }] });
    const { restore } = kubeProxyRules([s], NODE);
    expect(restore).not.toContain('KUBE-SVC-');
    expect(chain(restore, 'KUBE-SERVICES').filter((r) => r.includes('REJECT'))).toEqual([
      '-m comment --comment "default/web:http has no endpoints" -m tcp -p tcp -d 10.96.0.10 --dport 80 -j REJECT',
    ]);
    expect(chain(restore, 'KUBE-EXTERNAL-SERVICES')).toEqual([
      '-m comment --comment "default/web:http has no endpoints" -m addrtype --dst-type LOCAL -m tcp -p tcp --dport 30080 -j REJECT',
    ]);
  });

  it('externalTrafficPolicy Local: pods and the node go to the Cluster chain, others to KUBE-SVL; none local → DROP in filter', () => {
    const port = { name: 'http', protocol: 'TCP' as const, port: 80, targetPort: 8080, nodePort: 30080 };
    const local = kubeProxyRules([svc({ type: 'NodePort', externalTrafficPolicy: 'Local', ports: [port], endpoints: [{ ip: '10.244.1.2', ready: true, nodeName: 'n1' }] })], NODE).restore;
    const ext = chainNames.ext('default/web:http', 'tcp');
    expect(chain(local, ext).map((r) => r.replace(/-m comment --comment "[^"]*" /, ''))).toEqual([
      `-s 10.244.0.0/16 -j ${chainNames.svc('default/web:http', 'tcp')}`,
      '-m addrtype --src-type LOCAL -j KUBE-MARK-MASQ',
      `-m addrtype --src-type LOCAL -j ${chainNames.svc('default/web:http', 'tcp')}`,
      `-j ${chainNames.svl('default/web:http', 'tcp')}`,
    ]);
    const remote = kubeProxyRules([svc({ type: 'NodePort', externalTrafficPolicy: 'Local', ports: [port], endpoints: [{ ip: '10.244.3.5', ready: true, nodeName: 'n2' }] })], NODE).restore;
    expect(chain(remote, ext).some((r) => r.includes('KUBE-SVL-'))).toBe(false);
    expect(chain(remote, 'KUBE-EXTERNAL-SERVICES')).toEqual([
      '-m comment --comment "default/web:http has no local endpoints" -m addrtype --dst-type LOCAL -m tcp -p tcp --dport 30080 -j DROP',
    ]);
  });

  it('ClientIP affinity: a recent --rcheck per endpoint before the random choice, recent --set beside the DNAT', () => {
    const s = svc({ sessionAffinity: 'ClientIP', sessionAffinityTimeoutSeconds: 60, endpoints: [{ ip: '10.244.1.2', ready: true, nodeName: 'n1' }] });
    const { restore } = kubeProxyRules([s], NODE);
    const sep = chainNames.sep('default/web:http', 'tcp', '10.244.1.2:8080');
    expect(chain(restore, chainNames.svc('default/web:http', 'tcp'))[1]).toContain(`-m recent --name ${sep} --rcheck --seconds 60 --reap -j ${sep}`);
    expect(chain(restore, sep)[1]).toContain(`-m recent --name ${sep} --set -m tcp -p tcp -j DNAT --to-destination 10.244.1.2:8080`);
  });
});
