/** Reading request bodies in the formats clients send, and writing JSON answers. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { parse as parseYaml } from 'yaml';
import type { Json } from './database.js';
import { decodeKubernetesProtobuf } from './protobuf.js';
import { HttpError } from './status.js';

export function sendJson(res: ServerResponse, code: number, body: Json, extraHeaders: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(code, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), ...extraHeaders });
  res.end(text);
}

export function readBody(req: IncomingMessage, limit = 8 << 20): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) reject(new HttpError(413, 'RequestEntityTooLarge', 'request body too large'));
      else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** A request body as an object: JSON, YAML or Kubernetes protobuf by content type (CBOR is refused, as by a server without it). */
export function parseObjectBody(body: Buffer, contentType: string): Json {
  if (/protobuf/.test(contentType)) {
    try {
      return decodeKubernetesProtobuf(body);
    } catch (e) {
      throw new HttpError(415, 'UnsupportedMediaType', (e as Error).message);
    }
  }
  if (/cbor/.test(contentType)) {
    throw new HttpError(415, 'UnsupportedMediaType', 'the body of the request was in an unknown format - accepted media types include: application/json, application/yaml');
  }
  const yaml = /yaml/.test(contentType);
  try {
    return yaml ? parseYaml(body.toString('utf8')) : JSON.parse(body.toString('utf8'));
  } catch (e) {
    throw new HttpError(400, 'BadRequest', `the request body is not valid ${yaml ? 'YAML' : 'JSON'}: ${(e as Error).message}`);
  }
}
