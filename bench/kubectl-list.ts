/**
 * A `kubectl get svc,endpointslices -A -o yaml` List for benches: `n` ClusterIP Services of one
 * named port (targetPort by name), each with one EndpointSlice of two ready endpoints, with
 * the metadata kubectl prints (labels, annotations, uid, owner references, target refs):
 * about 2 KB per Service and its slice, 20 MB for 10,000 (the 16.8 MB a real cluster of 10,000
 * Services printed had less per object).
 */
/** The List text (see the header). */
export function kubectlList(n: number): string {
  const out: string[] = ['apiVersion: v1', 'items:'];
  for (let i = 0; i < n; i++) {
    const ns = `team-${i % 50}`;
    const name = `svc-${i}`;
    const ip = `10.${96 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`;
    const uid = `8f0c${i.toString(16).padStart(4, '0')}-2b1d-4c5e-9a7f-1c2d3e4f5a6b`;
    out.push(
      '- apiVersion: v1',
      '  kind: Service',
      '  metadata:',
      `    creationTimestamp: "2026-11-20T10:${String(i % 60).padStart(2, '0')}:00Z"`,
      '    labels:',
      `      app.kubernetes.io/name: ${name}`,
      `    name: ${name}`,
      `    namespace: ${ns}`,
      `    resourceVersion: "${1000 + i}"`,
      `    uid: ${uid}`,
      '  spec:',
      `    clusterIP: ${ip}`,
      '    clusterIPs:',
      `    - ${ip}`,
      '    internalTrafficPolicy: Cluster',
      '    ipFamilies:',
      '    - IPv4',
      '    ipFamilyPolicy: SingleStack',
      '    ports:',
      '    - name: http',
      '      port: 80',
      '      protocol: TCP',
      '      targetPort: http',
      '    selector:',
      `      app.kubernetes.io/name: ${name}`,
      '    sessionAffinity: None',
      '    type: ClusterIP',
      '  status:',
      '    loadBalancer: {}',
      '- addressType: IPv4',
      '  apiVersion: discovery.k8s.io/v1',
      '  endpoints:',
    );
    for (let k = 0; k < 2; k++) {
      out.push(
        '  - addresses:',
        `    - 10.${128 + (i >> 16)}.${(i >> 8) & 255}.${((i & 63) << 2) | k}`,
        '    conditions:',
        '      ready: true',
        '      serving: true',
        '      terminating: false',
        `    nodeName: node-${(i + k) % 100}`,
        '    targetRef:',
        '      kind: Pod',
        `      name: ${name}-7d9f8b6c5d-${k}x${(i % 1000).toString(36)}`,
        `      namespace: ${ns}`,
        `      uid: ${uid.slice(0, -1)}${k}`,
      );
    }
    out.push(
      '  kind: EndpointSlice',
      '  metadata:',
      '    annotations:',
      `      endpoints.kubernetes.io/last-change-trigger-time: "2026-11-20T10:${String(i % 60).padStart(2, '0')}:05Z"`,
      `    creationTimestamp: "2026-11-20T10:${String(i % 60).padStart(2, '0')}:01Z"`,
      `    generateName: ${name}-`,
      '    generation: 4',
      '    labels:',
      '      endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io',
      `      kubernetes.io/service-name: ${name}`,
      `    name: ${name}-abcde`,
      `    namespace: ${ns}`,
      '    ownerReferences:',
      '    - apiVersion: v1',
      '      blockOwnerDeletion: true',
      '      controller: true',
      '      kind: Service',
      `      name: ${name}`,
      `      uid: ${uid}`,
      `    resourceVersion: "${2000 + i}"`,
      `    uid: ${uid.slice(0, -2)}ff`,
      '  ports:',
      '  - name: http',
      '    port: 8080',
      '    protocol: TCP',
    );
  }
  out.push('kind: List', 'metadata:', '  resourceVersion: ""', '');
  return out.join('\n');
}
