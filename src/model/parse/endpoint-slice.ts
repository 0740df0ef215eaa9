/**
 * discovery.k8s.io/v1 EndpointSlice: the endpoints of one Service
 * (addresses, conditions, node, zone), ports, and pharos' weight annotation.
 */
import { type Context, readMeta } from './common.js';
import { PROTOCOLS } from './service.js';
import { show } from '../field-reader.js';
import { addressFamily, checkPortName, checkServiceName } from '../syntax.js';
import type { Endpoint, EndpointPort, EndpointSlice } from '../types.js';

/** Label that ties an EndpointSlice to its Service. */
export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

/** pharos extension: Maglev weight of every endpoint in a slice. */
export const WEIGHT_ANNOTATION = 'lb.pharos.io/weight';

export function parseEndpointSliceObject(ctx: Context): EndpointSlice {
  const meta = readMeta(ctx, 'namespaced');
  const labelReader = ctx.root.get('metadata').get('labels').get(SERVICE_NAME_LABEL);
  const serviceName = labelReader.nonEmptyString();
  const serviceNameProblem = checkServiceName(serviceName);
  if (serviceNameProblem) labelReader.report(serviceNameProblem);

  const weightText = meta.annotations[WEIGHT_ANNOTATION];
  let weight = 1;
  if (weightText !== undefined) {
    const weightReader = ctx.root.get('metadata').get('annotations').get(WEIGHT_ANNOTATION);
    if (!/^(0|[1-9][0-9]{0,4})$/.test(weightText.trim()) || Number(weightText) > 65535) {
      weightReader.report(`${show(weightText)} is not a weight (an integer 0..65535)`);
    } else weight = Number(weightText);
  }

  const addressType = ctx.root.get('addressType').oneOf(['IPv4', 'IPv6', 'FQDN'] as const);
  const ports: EndpointPort[] = [];
  ctx.root.get('ports').items((r) => {
    r.object();
    const portReader = r.get('port');
    // A nil port means "all ports" in the API; pharos needs a port to forward to.
    if (portReader.absent) {
      ctx.warn(`${r.path}: no port (all ports) is not supported; entry skipped`);
      return;
    }
    const nameReader = r.get('name');
    const name = nameReader.optString() ?? '';
    if (name !== '') {
      const problem = checkPortName(name);
      if (problem) nameReader.report(problem);
    }
    ports.push({ name, port: portReader.integer(1, 65535), protocol: r.get('protocol').oneOf(PROTOCOLS, 'TCP') });
  });

  const endpoints: Endpoint[] = ctx.root
    .get('endpoints')
    .items((r) => {
      r.object();
      const addressesReader = r.get('addresses');
      const addresses = addressesReader.list().map((a) => {
        const text = a.nonEmptyString();
        if (addressType !== 'FQDN') {
          const family = addressFamily(text);
          if (!family) a.fail(`${show(text)} is not an IP address`);
          if (family !== addressType) a.fail(`${show(text)} is ${family} but addressType is ${addressType}`);
        }
        return text;
      });
      if (addresses.length === 0) addressesReader.fail('at least one address is required');
      if (addresses.length > 100) addressesReader.fail('may hold at most 100 addresses');
      const conditions = r.get('conditions');
      // API documentation: nil ready = ready; nil serving defers to ready; nil terminating = false.
      const ready = conditions.get('ready').boolean(true);
      const endpoint: Endpoint = {
        addresses,
        ready,
        serving: conditions.get('serving').boolean(ready),
        terminating: conditions.get('terminating').boolean(false),
        weight,
      };
      const nodeName = r.get('nodeName').optString();
      if (nodeName !== undefined) endpoint.nodeName = nodeName;
      const zone = r.get('zone').optString();
      if (zone !== undefined) endpoint.zone = zone;
      return endpoint;
    });

  return { kind: 'EndpointSlice', meta, serviceName, addressType, ports, endpoints };
}
