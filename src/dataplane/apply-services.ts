/**
 * applyManifestServices: hands a running dataplane the full list of the Services its
 * manifests give, whenever they change; the config's own `services` are a separate source,
 * applied with the rest of the config (at start and on reload).
 *
 * The one way from manifests to the service table: `Dataplane.applyServices(services,
 * 'manifests')`. The list is always complete (never a delta), and a Service that did not
 * change is the same object as last time: the table finds it unchanged by identity and works
 * out the difference for the others, so flows to endpoints that remain are left alone.
 */
import type { ServiceConfig } from '../config/types.ts';
import type { Dataplane } from './dataplane.ts';

export function applyManifestServices(dp: Dataplane, services: readonly ServiceConfig[]): void {
  dp.applyServices(services, 'manifests');
}

/** The manifests' Services last applied to `dp`. */
export function manifestServicesOf(dp: Dataplane): readonly ServiceConfig[] {
  return (dp.conntrackHooks?.services.specsOf('manifests') ?? []) as readonly ServiceConfig[];
}
