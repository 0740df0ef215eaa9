/**
 * v1 Secret: decoded data, for BGP passwords (authSecretRef).
 */
import { type Context, readMeta } from './common.js';
import type { Secret } from '../types.js';

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

export function parseSecretObject(ctx: Context): Secret {
  const meta = readMeta(ctx, 'namespaced');
  const data: Record<string, string> = {};
  const dataReader = ctx.root.get('data');
  for (const [key, r] of dataReader.recover(() => dataReader.entries(), [])) {
    r.recover(() => {
      const encoded = r.string();
      if (!BASE64.test(encoded)) r.report('is not valid base64');
      data[key] = Buffer.from(encoded, 'base64').toString('utf8');
    }, undefined);
  }
  // stringData is write-only in the API (merged into data, winning); manifests use it.
  const stringData = ctx.root.get('stringData');
  for (const [key, r] of stringData.recover(() => stringData.entries(), [])) {
    r.recover(() => {
      data[key] = r.string();
    }, undefined);
  }
  return { kind: 'Secret', meta, data };
}
