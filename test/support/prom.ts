// The Prometheus exposition reader of the lab library (src/lab/prom.ts), for tests.
export * from '../../src/lab/prom.js';
