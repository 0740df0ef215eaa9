// The Service manifests of the lab library (src/lab/manifests.ts), for tests.
export * from '../../src/lab/manifests.js';
