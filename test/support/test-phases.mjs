// Which test files `npm test` (run-tests.mjs) runs two at a time, before the
// others run one at a time.
//
// A file is listed here only if it is pure logic: no network namespace, no
// privilege, no fixed port, no fixed path it writes, and no wall-clock bound
// it asserts that another test file on the other core could upset (CPU-time
// budgets and simulated clocks are fine; leader, session, plan, source,
// announcer, event-loop, server, manifests and bfd-service assert wall-clock
// bounds, and leader failed one beside another file under load). Every file
// not listed — a new lab test included — runs in the serial phase, so the
// safe default needs no action. test/support/test-phases.test.ts fails when a
// listed file is gone, uses the lab or privileges, or when two test files
// share a network namespace prefix.
export const PARALLEL_FILES = [
  'test/agent/config-socket-lb.test.ts',
  'test/agent/config.test.ts',
  'test/agent/interfaces.test.ts',
  'test/agent/log-level.test.ts',
  'test/bench/charts.test.ts',
  'test/bench/scale-core.test.ts',
  'test/bench/scale-kube-core.test.ts',
  'test/bgp/bfd.test.ts',
  'test/bgp/codec.test.ts',
  'test/bgp/controller.test.ts',
  'test/bgp/policy.test.ts',
  'test/bgp/speaker.test.ts',
  'test/cli/convert.test.ts',
  'test/cli/explain.test.ts',
  'test/cli/table.test.ts',
  'test/datapath/abi.test.ts',
  'test/datapath/attach-check.test.ts',
  'test/datapath/bpf-headers.test.ts',
  'test/datapath/desired.test.ts',
  'test/datapath/maglev.test.ts',
  'test/datapath/snat.test.ts',
  'test/datapath/sock-abi.test.ts',
  'test/datapath/xdp-mode.test.ts',
  'test/fuzz/properties.test.ts',
  'test/ipam/allocator.test.ts',
  'test/ipam/cidr.test.ts',
  'test/ipam/controller.test.ts',
  'test/ipam/properties.test.ts',
  'test/kube/cilium-status.test.ts',
  'test/kube/datapath-report.test.ts',
  'test/kube/emulator-parts.test.ts',
  'test/kube/emulator.test.ts',
  'test/kube/rbac-authorizer.test.ts',
  'test/l2/controllers.test.ts',
  'test/l2/drain-core.test.ts',
  'test/l2/election-core.test.ts',
  'test/l2/outage-core.test.ts',
  'test/l2/policy.test.ts',
  'test/metrics/datapath-render.test.ts',
  'test/metrics/exposition.test.ts',
  'test/metrics/readme-names.test.ts',
  'test/metrics/single-flight.test.ts',
  'test/metrics/state-query.test.ts',
  'test/model/address-bytes.test.ts',
  'test/model/crds.test.ts',
  'test/model/parse-all-errors.test.ts',
  'test/model/parse-fuzz.test.ts',
  'test/model/parse.test.ts',
  'test/model/scope.test.ts',
  'test/monitoring/l2-holders.test.ts',
  'test/monitoring/rules.test.ts',
  'test/security/bounds.test.ts',
  'test/security/daemonset.test.ts',
  'test/security/http.test.ts',
  'test/security/systemd-unit.test.ts',
  'test/soak/core.test.ts',
  'test/sources/manifests-memory.test.ts',
  'test/sources/manifests-parity.test.ts',
  'test/sources/manifests-parsers.test.ts',
  'test/store/snapshot.test.ts',
  'test/support/test-phases.test.ts',
  'test/walkthrough/endpoint-controller.test.ts',
];

/** How many files the parallel phase runs at once (the CI machine has 2 cores). */
export const PARALLEL_JOBS = 2;

/**
 * What a listed file must not contain: privileges (every test that needs
 * root, BPF or a namespace asks privilegedUnavailable()), the lab, network
 * namespaces. A file that needs one of them belongs to the serial phase.
 */
export const SERIAL_ONLY = [
  /privilegedUnavailable|PHAROS_REQUIRE_PRIVILEGED/,
  /\bwithLab\(|\bLab\.create\(|\bnew Lab\(|\bstart\w*Lab\(|\bKubeAgentLab\b|\bL2Lab\b/,
  /\bnetns\b/,
];
