// The Kubernetes API emulator over HTTPS, as the in-cluster API server the
// image's agent finds through its service account (KUBERNETES_SERVICE_HOST
// and the mounted token and CA). Run inside a lab namespace; the test talks
// to it over stdin/stdout, one JSON object per line:
//   → {"id":1,"op":"put","args":["services",{...}]}   ← {"id":1,"result":{...}}
// Usage: node apiserver-child.mjs HOST PORT KEY.pem CERT.pem TOKEN USER
// (requests bearing TOKEN act as USER under the stored RBAC objects, where the
// emulator enforces RBAC). Prints {"ready":URL} once bound.
import { readFileSync } from 'node:fs';
import { serveOps } from '../../dist/lab/stdio-ops.js';
import { startApiServer } from '../../dist/lab/apiserver/server.js';

const [host, port, keyFile, certFile, token, user] = process.argv.slice(2);
const api = await startApiServer({
  host,
  port: Number(port),
  tls: { key: readFileSync(keyFile), cert: readFileSync(certFile) },
  rbac: { users: { [token]: user } },
});
// Requests refused for want of a permission (401/403), bounded.
const refused = [];
api.onRequest((r) => {
  if ((r.code === 401 || r.code === 403) && refused.length < 100) refused.push({ verb: r.verb, resource: r.resource, name: r.name, code: r.code });
});
const ops = {
  put: (resource, obj) => api.objects.put(resource, obj),
  get: (resource, ns, name) => api.objects.get(resource, ns ?? undefined, name) ?? null,
  refused: () => refused,
};
serveOps(api, ops);
