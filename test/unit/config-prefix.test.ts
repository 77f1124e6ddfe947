import { describe, expect, it } from 'vitest';
import { validateConfigObject } from '../../src/config/load.ts';

describe('config: prefix lengths', () => {
  it('refuses a prefix length written with a leading zero, as the compiler would', () => {
    const r = validateConfigObject({
      node: { name: 'n' },
      bridges: [{ name: 'cni0', address: '10.244.1.1/024' }],
      routes: [{ dst: '10.0.0.0/08', dev: 'cni0' }],
    });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.errors).toEqual([
      "bridges[0].address: '10.244.1.1/024': the prefix length must be an integer 0..32",
      "routes[0].dst: '10.0.0.0/08': the prefix length must be an integer 0..32",
    ]);
  });

  it('accepts /0 and /32', () => {
    const r = validateConfigObject({
      node: { name: 'n' },
      ports: [{ name: 'up', address: '192.168.50.11/24' }],
      routes: [
        { dst: '0.0.0.0/0', via: '192.168.50.1' },
        { dst: '203.0.113.7/32', via: '192.168.50.1' },
      ],
    });
    expect(r.ok).toBe(true);
  });
});
