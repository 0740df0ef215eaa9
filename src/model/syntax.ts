/**
 * Syntax checks for the strings Kubernetes objects carry: object names, label
 * keys and values, IP addresses and CIDRs. Syntax only — range arithmetic
 * lives in src/model/cidr.ts, selector matching in src/model/selector.ts.
 *
 * Each function returns an error message, or undefined when the text is fine,
 * so callers attach the field path themselves.
 */
import { tryParseAddress } from './cidr.js';
import type { IPFamily } from './types.js';

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const LABEL_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const IANA_SVC_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** Most object names (Node, Lease, Secret, EndpointSlice, our CRDs). */
export function checkSubdomain(name: string): string | undefined {
  if (name.length > 253) return 'must be at most 253 characters';
  if (!DNS1123_SUBDOMAIN.test(name)) {
    return `${JSON.stringify(name)} is not a valid name (lowercase letters, digits, "-" and ".", starting and ending with a letter or digit)`;
  }
  return undefined;
}

/** Namespace names. */
export function checkLabelName(name: string): string | undefined {
  if (name.length > 63) return 'must be at most 63 characters';
  if (!DNS1123_LABEL.test(name)) {
    return `${JSON.stringify(name)} is not a valid name (lowercase letters, digits and "-", starting and ending with a letter or digit)`;
  }
  return undefined;
}

/** Service names must be DNS-1035 labels: they become DNS names and environment variables. */
export function checkServiceName(name: string): string | undefined {
  if (name.length > 63) return 'must be at most 63 characters';
  if (!DNS1035_LABEL.test(name)) {
    return `${JSON.stringify(name)} is not a valid Service name (lowercase letters, digits and "-", starting with a letter)`;
  }
  return undefined;
}

/** A label key: `[prefix/]name`, prefix a DNS subdomain, name up to 63 characters. */
export function checkLabelKey(key: string): string | undefined {
  const slash = key.indexOf('/');
  const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  if (prefix !== undefined && (prefix === '' || prefix.length > 253 || !DNS1123_SUBDOMAIN.test(prefix))) {
    return `${JSON.stringify(key)} is not a valid label key (the prefix must be a DNS subdomain)`;
  }
  if (name === '' || name.length > 63 || !LABEL_NAME.test(name)) {
    return `${JSON.stringify(key)} is not a valid label key (name: up to 63 letters, digits, "-", "_", ".", starting and ending with a letter or digit)`;
  }
  return undefined;
}

export function checkLabelValue(value: string): string | undefined {
  if (value === '') return undefined;
  if (value.length > 63 || !LABEL_NAME.test(value)) {
    return `${JSON.stringify(value)} is not a valid label value (up to 63 letters, digits, "-", "_", ".", starting and ending with a letter or digit)`;
  }
  return undefined;
}

/** A named container port (`http`, `metrics-tls`): IANA service name rules. */
export function checkPortName(name: string): string | undefined {
  if (name.length > 15 || !IANA_SVC_NAME.test(name) || !/[a-z]/.test(name) || name.includes('--')) {
    return `${JSON.stringify(name)} is not a valid port name (up to 15 lowercase letters, digits and "-", with at least one letter)`;
  }
  return undefined;
}

/** The family of a plain address (no zone, no prefix), or undefined when it is not one. */
export function addressFamily(text: string): IPFamily | undefined {
  // The one address parser (cidr.ts); it forgives surrounding space, a field value may not have any.
  if (text.trim() !== text) return undefined;
  return tryParseAddress(text)?.family;
}

export function checkAddress(text: string): string | undefined {
  return addressFamily(text) ? undefined : `${JSON.stringify(text)} is not an IP address`;
}

/** The family of `address/len`, or undefined when the text is not a CIDR. */
export function cidrFamily(text: string): IPFamily | undefined {
  const slash = text.indexOf('/');
  if (slash < 0) return undefined;
  const family = addressFamily(text.slice(0, slash));
  const len = text.slice(slash + 1);
  if (!family || !/^(0|[1-9][0-9]{0,2})$/.test(len)) return undefined;
  return Number(len) <= (family === 'IPv4' ? 32 : 128) ? family : undefined;
}

export function checkCidr(text: string): string | undefined {
  return cidrFamily(text) ? undefined : `${JSON.stringify(text)} is not a CIDR`;
}
