/**
 * The smallest topology the reference benches build: a switch namespace (`sw`, where a relay
 * or a bridge lives) and two pod namespaces (`pa`, `pb`), all with this process's prefix
 * (src/lab/netns.ts), removed together by `remove()` (and on exit in any case).
 */
import { createNetns, type Netns } from '../src/lab/netns.ts';

export interface SwitchAndPods {
  readonly sw: Netns;
  readonly pa: Netns;
  readonly pb: Netns;
  /** Removes the three namespaces and everything in them. */
  remove(): void;
}

/** Namespaces `<label>sw`, `<label>pa`, `<label>pb`; none left behind if one cannot be made. */
export function createSwitchAndPods(label: string): SwitchAndPods {
  const made: Netns[] = [];
  const remove = (): void => {
    for (const ns of made.reverse()) ns.remove();
    made.length = 0;
  };
  try {
    for (const role of ['sw', 'pa', 'pb']) made.push(createNetns(`${label}${role}`));
  } catch (err) {
    remove();
    throw err;
  }
  const [sw, pa, pb] = made as [Netns, Netns, Netns];
  return { sw, pa, pb, remove };
}
