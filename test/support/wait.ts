// The poll-until and sleep of the lab library (src/lab/wait.ts), for tests.
export * from '../../src/lab/wait.js';
