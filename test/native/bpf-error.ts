import { BpfError } from '../../src/native/libbpf.js';

/** Runs `fn` and returns the BpfError it throws; anything else fails the test. */
export function bpfErrorOf(fn: () => unknown): BpfError {
  try {
    fn();
  } catch (err) {
    if (err instanceof BpfError) return err;
    throw new Error(`expected a BpfError, got ${String(err)}`);
  }
  throw new Error('expected a BpfError, nothing was thrown');
}

/** Same for a promise. */
export async function bpfRejectionOf(promise: Promise<unknown>): Promise<BpfError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof BpfError) return err;
    throw new Error(`expected a BpfError, got ${String(err)}`);
  }
  throw new Error('expected a BpfError, the promise resolved');
}
