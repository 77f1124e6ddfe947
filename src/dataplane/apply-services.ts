/**
 * applyManifestServices: hands a running dataplane the full list of the Services its
 * manifests give, whenever they change; the config's own `services` are a separate source,
 * applied with the rest of the config (at start and on reload).
 *
 * THE SEAM between manifests and the service table. The list is always complete (never a
 * delta), and a Service that did not change is the same object as last time: the service
 * table works out the difference itself, so flows to endpoints that remain are left alone.
 * Until the service table exists this only records the list (`manifestServicesOf`). When it
 * lands, this calls it: `dp.applyServices(services, 'manifests')`.
 */
import type { ServiceConfig } from '../config/types.ts';
import type { Dataplane } from './dataplane.ts';

const applied = new WeakMap<Dataplane, readonly ServiceConfig[]>();

export function applyManifestServices(dp: Dataplane, services: readonly ServiceConfig[]): void {
  // TODO(service table): dp.applyServices(services, 'manifests'), and keep the record.
  applied.set(dp, services);
}

/** The manifests' Services last applied to `dp`. */
export function manifestServicesOf(dp: Dataplane): readonly ServiceConfig[] {
  return applied.get(dp) ?? [];
}
