// The L2 lab lives in the lab library (src/lab/l2-lab.ts), shared with the benches; kept here for the L2 tests that import it by this path.
export * from '../../src/lab/l2-lab.js';
