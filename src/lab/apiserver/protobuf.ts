/**
 * Decoding of the Kubernetes protobuf envelope for the few built-in kinds
 * kubectl's typed `create` commands send that way (`kubectl create
 * namespace|service|secret|configmap` use `Content-Type:
 * application/vnd.kubernetes.protobuf` and do not fall back to JSON on 415).
 * Responses stay JSON (kubectl's Accept lists application/json too).
 *
 * Envelope: magic `k8s\0`, then runtime.Unknown {1: typeMeta {1: apiVersion,
 * 2: kind}, 2: raw (the object's message), 3: contentEncoding, 4: contentType}.
 * Field numbers below are those of k8s.io/api/core/v1/generated.proto and
 * k8s.io/apimachinery/pkg/apis/meta/v1/generated.proto, limited to what
 * kubectl's generators set (checked against `--dry-run=client -o json` in
 * test/kube/emulator.test.ts).
 */

type Json = any;

/** A message schema: field number → [json name, type]. */
type FieldType = 'string' | 'bytes' | 'int' | 'bool' | 'time' | 'intOrString' | Msg | ['map', 'string' | 'bytes'];
interface Msg {
  [field: number]: [string, FieldType, 'repeated'?];
}

const time: FieldType = 'time';

const objectMeta: Msg = {
  1: ['name', 'string'],
  2: ['generateName', 'string'],
  3: ['namespace', 'string'],
  5: ['uid', 'string'],
  6: ['resourceVersion', 'string'],
  7: ['generation', 'int'],
  8: ['creationTimestamp', time],
  11: ['labels', ['map', 'string']],
  12: ['annotations', ['map', 'string']],
  14: ['finalizers', 'string', 'repeated'],
};

const servicePort: Msg = {
  1: ['name', 'string'],
  2: ['protocol', 'string'],
  3: ['port', 'int'],
  4: ['targetPort', 'intOrString'],
  5: ['nodePort', 'int'],
  6: ['appProtocol', 'string'],
};

const serviceSpec: Msg = {
  1: ['ports', servicePort, 'repeated'],
  2: ['selector', ['map', 'string']],
  3: ['clusterIP', 'string'],
  4: ['type', 'string'],
  5: ['externalIPs', 'string', 'repeated'],
  7: ['sessionAffinity', 'string'],
  8: ['loadBalancerIP', 'string'],
  9: ['loadBalancerSourceRanges', 'string', 'repeated'],
  10: ['externalName', 'string'],
  11: ['externalTrafficPolicy', 'string'],
  12: ['healthCheckNodePort', 'int'],
  13: ['publishNotReadyAddresses', 'bool'],
  17: ['ipFamilyPolicy', 'string'],
  18: ['clusterIPs', 'string', 'repeated'],
  19: ['ipFamilies', 'string', 'repeated'],
  20: ['allocateLoadBalancerNodePorts', 'bool'],
  21: ['loadBalancerClass', 'string'],
  22: ['internalTrafficPolicy', 'string'],
};

const kinds: Record<string, Msg> = {
  'v1/Namespace': { 1: ['metadata', objectMeta], 2: ['spec', { 1: ['finalizers', 'string', 'repeated'] }] },
  'v1/Service': { 1: ['metadata', objectMeta], 2: ['spec', serviceSpec] },
  'v1/Secret': { 1: ['metadata', objectMeta], 2: ['data', ['map', 'bytes']], 3: ['type', 'string'], 4: ['stringData', ['map', 'string']], 5: ['immutable', 'bool'] },
  'v1/ConfigMap': { 1: ['metadata', objectMeta], 2: ['data', ['map', 'string']], 3: ['binaryData', ['map', 'bytes']], 4: ['immutable', 'bool'] },
};

export class ProtobufError extends Error {
  override name = 'ProtobufError';
}

interface RawField {
  field: number;
  wire: number;
  value: bigint | Buffer;
}

function readVarint(buf: Buffer, pos: { i: number }): bigint {
  let result = 0n;
  for (let shift = 0n; shift < 70n; shift += 7n) {
    if (pos.i >= buf.length) throw new ProtobufError('truncated varint');
    const b = buf[pos.i++]!;
    result |= BigInt(b & 0x7f) << shift;
    if ((b & 0x80) === 0) return result;
  }
  throw new ProtobufError('varint too long');
}

function fields(buf: Buffer): RawField[] {
  const out: RawField[] = [];
  const pos = { i: 0 };
  while (pos.i < buf.length) {
    const key = Number(readVarint(buf, pos));
    const field = key >>> 3;
    const wire = key & 7;
    if (wire === 0) out.push({ field, wire, value: readVarint(buf, pos) });
    else if (wire === 2) {
      const len = Number(readVarint(buf, pos));
      if (pos.i + len > buf.length) throw new ProtobufError('truncated field');
      out.push({ field, wire, value: buf.subarray(pos.i, pos.i + len) });
      pos.i += len;
    } else if (wire === 1 || wire === 5) {
      const n = wire === 1 ? 8 : 4;
      out.push({ field, wire, value: buf.subarray(pos.i, pos.i + n) });
      pos.i += n;
    } else throw new ProtobufError(`unsupported wire type ${wire}`);
  }
  return out;
}

function scalar(f: RawField, type: FieldType): Json {
  if (type === 'string') return (f.value as Buffer).toString('utf8');
  if (type === 'bytes') return (f.value as Buffer).toString('base64');
  if (type === 'bool') return f.value !== 0n;
  if (type === 'int') return Number(BigInt.asIntN(64, f.value as bigint));
  if (type === 'time') {
    const t = decode(f.value as Buffer, { 1: ['seconds', 'int'], 2: ['nanos', 'int'] });
    return new Date((t.seconds ?? 0) * 1000).toISOString().replace(/\.\d+Z$/, 'Z');
  }
  if (type === 'intOrString') {
    const v = decode(f.value as Buffer, { 1: ['type', 'int'], 2: ['intVal', 'int'], 3: ['strVal', 'string'] });
    return v.type === 1 ? (v.strVal ?? '') : (v.intVal ?? 0);
  }
  if (Array.isArray(type)) throw new ProtobufError('map entry decoded as scalar');
  return decode(f.value as Buffer, type);
}

function decode(buf: Buffer, msg: Msg): Json {
  const out: Json = {};
  for (const f of fields(buf)) {
    const def = msg[f.field];
    if (!def) continue; // fields kubectl does not send, or newer than this table
    const [name, type, repeated] = def;
    if (Array.isArray(type)) {
      const entry = decode(f.value as Buffer, { 1: ['key', 'string'], 2: ['value', type[1]] });
      (out[name] ??= {})[entry.key ?? ''] = entry.value ?? '';
    } else if (repeated) (out[name] ??= []).push(scalar(f, type));
    else {
      const v = scalar(f, type);
      // Go writes zero values of plain fields; in JSON they are omitempty, and absent means "default it".
      if (v !== '' && v !== 0 && v !== false) out[name] = v;
    }
  }
  return out;
}

/** Decode a `k8s\0`-framed protobuf body into the JSON object it encodes. */
export function decodeKubernetesProtobuf(body: Buffer): Json {
  if (body.length < 4 || body.subarray(0, 4).toString('latin1') !== 'k8s\0') throw new ProtobufError('missing the k8s protobuf magic');
  const unknown = decode(body.subarray(4), {
    1: ['typeMeta', { 1: ['apiVersion', 'string'], 2: ['kind', 'string'] }],
    2: ['raw', 'bytes'],
    3: ['contentEncoding', 'string'],
  });
  const apiVersion = unknown.typeMeta?.apiVersion ?? '';
  const kind = unknown.typeMeta?.kind ?? '';
  if (unknown.contentEncoding) throw new ProtobufError(`content encoding ${unknown.contentEncoding} is not supported`);
  const msg = kinds[`${apiVersion}/${kind}`];
  if (!msg) throw new ProtobufError(`protobuf bodies of ${apiVersion} ${kind} are not supported by the emulator; send JSON (kubectl apply --validate=false -f)`);
  return { apiVersion, kind, ...decode(Buffer.from(unknown.raw ?? '', 'base64'), msg) };
}
