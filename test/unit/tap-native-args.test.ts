/**
 * tapOpen checks its arguments before it touches the addon, so bad ones fail the same way on
 * any machine (no root, no addon): EINVAL and a message that names the value.
 */
import { describe, expect, it } from 'vitest';
import { tapOpen } from '../../src/ports/tap-native.ts';

function failure(fn: () => unknown): { code?: string; message: string } {
  try {
    fn();
  } catch (err) {
    return err as { code?: string; message: string };
  }
  throw new Error('did not throw');
}

describe('tapOpen argument checks', () => {
  it('refuses a MAC that is not one, or a multicast one', () => {
    expect(failure(() => tapOpen('np-test0', { mac: '02:00:00:00:00' }))).toMatchObject({
      code: 'EINVAL',
      message: 'invalid MAC address "02:00:00:00:00" (expected aa:bb:cc:dd:ee:ff)',
    });
    expect(failure(() => tapOpen('np-test0', { mac: '03:00:00:00:00:01' }))).toMatchObject({
      code: 'EINVAL',
      message: 'invalid MAC address "03:00:00:00:00:01": multicast bit set',
    });
  });

  it('refuses a name the kernel would, and an MTU out of range', () => {
    expect(failure(() => tapOpen('a-name-far-too-long'))).toMatchObject({ code: 'EINVAL', message: expect.stringMatching(/at most 15 allowed/) });
    expect(failure(() => tapOpen('np/x'))).toMatchObject({ code: 'EINVAL' });
    expect(failure(() => tapOpen('np-test0', { mtu: 67 }))).toMatchObject({ code: 'EINVAL', message: 'invalid MTU 67 for TAP device np-test0 (68..65535)' });
  });
});
