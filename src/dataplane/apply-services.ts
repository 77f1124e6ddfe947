/**
 * applyServices: hands a running dataplane the full list of its Services — the config's own
 * `services` followed by those its manifests give — whenever the manifests change.
 *
 * THE SEAM between manifests and the service table. The list is always complete (never a
 * delta): the service table works out the difference itself, so flows to endpoints that
 * remain are left alone. Until the service table exists, this only records the list as the
 * dataplane's config (`dp.config.services`), which is also what a later reload compares with
 * and what the admin server would show. When the service table lands, this function calls it
 * (e.g. `dp.applyServices(services)`) and keeps the record.
 */
import type { ServiceConfig } from '../config/types.ts';
import type { Dataplane } from './dataplane.ts';

export function applyServices(dp: Dataplane, services: ServiceConfig[]): void {
  // TODO(service table): program `services` into the dataplane's service table here.
  dp.config = { ...dp.config, services };
}
