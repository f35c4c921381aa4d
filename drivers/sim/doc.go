// Package sim is Drover's simulated hypervisor: a time-scaled, deterministic model
// of a cluster (Model), an HTTP+JSON server around it (Server, Serve: what
// `drover sim serve` runs) and the "sim" driver that is the server's client
// (Driver: Dial for a remote server, NewEmbedded for an in-process one). It is
// the ground of Drover's tests, demo, benchmarks and chaos tests. Like every
// driver it acts and never decides: placement and ordering are the caller's.
//
// # The model
//
// Model is a discrete-event simulation in virtual time: it never reads a clock
// and does no I/O. Now, NextEventTime, Step and AdvanceTo move it; AdvanceTo
// processes every event up to the given time in order and integrates transfers
// exactly between events (bandwidth is piecewise constant).
//
// Bandwidth: each node has one pool of nic_mbps shared by all migrations out of
// and into it; one migration stream is also capped at min(stream_mbps of source,
// stream_mbps of target). Rates are shared by max-min fairness (progressive
// filling) over the pools and stream caps, recomputed at every event.
//
// A migration pays setup_seconds (no bandwidth), then copies memory in
// pre-copy rounds: round 1 sends the whole memory, each next round what the VM
// dirtied during the previous one (dirty_mib_s x round time, capped at its
// memory). When the next round would fit in max_downtime_ms at the current rate,
// the VM stops and the rest is sent (stop-and-copy; its duration is the
// downtime); then the VM runs on the target. A migration whose remaining amount
// (round remainder + dirtied so far) has not shrunk for progress_timeout_seconds
// fails "not converged", as does one that needs more than max_rounds rounds. So
// when too many streams share a link and each share drops towards the dirty
// rates, drains get slower (more retransmission) and then fail.
//
// During a migration the VM's memory is reserved on the target. A migration is
// rejected (Error kind "rejected", Reason one of the Reason* constants) when the
// target is paused, rebooting or down, lacks free memory, another CPU group or a
// network of the VM; when the VM is not running, not migratable, migrating
// elsewhere, or not on the given source. A VM already on the target is
// OutcomeAlreadyThere; a migration of the VM to the same target in flight is
// joined (OutcomeJoined).
//
// A suspended VM migrates too (Capabilities.MigrateSuspended): its saved state
// goes over the same links as a live migration but nothing dirties it, so it
// always converges, with no downtime; the VM stays suspended on the target.
//
// Nodes are up, paused, rebooting or down. Pause and resume are idempotent; the
// pause survives reboots. A reboot lasts reboot_seconds and gives the node a new
// boot ID (derived from seed, node and boot count). Running VMs on a node that
// reboots are killed (left stopped) and counted in Stats.VMsKilledByReboot: a
// safety violation of whoever rebooted. A suspended VM holds its saved state on
// its node: a reboot discards it (the VM comes back stopped), counted in
// Stats.SuspendedLostByReboot, also a safety violation; Stats.Reboots counts the
// reboots of each node. Rebooting a rebooting node does nothing;
// rebooting a down node power-cycles it. Installing moves pending updates to
// "installed, waiting for reboot" (RebootRequired if any needs a reboot, the
// default); the reboot activates them.
//
// Local disks (vms[].disks with local: true) move with their VM
// (Capabilities.StorageMigration): the migration copies them first, in round 1,
// over the same streams as memory (like QEMU's drive-mirror before the RAM
// pre-copy), so they lengthen the first round and leave more memory dirtied
// behind it; shared disks (local: false) do not move. The target must have the
// disks' size free in nodes[].storage_mib (else the migration is rejected,
// insufficient_storage); it holds that space from the start, the source gets it
// back when the VM runs on the target, and a failed migration returns it.
// Progress and results count disk bytes in transferred_mib and separately in
// disk_mib.
//
// # Cluster file
//
// A YAML file (see testdata/clusters/demo.yaml) with seed, model, nodes, vms and
// faults. Unknown and duplicate keys are errors naming the key and line; every
// value is validated and errors name the field (nodes[2].memory_mib) and a fix.
// Defaults: model {setup_seconds: 2, max_downtime_ms: 300,
// progress_timeout_seconds: 150, max_rounds: 30}; node nic_mbps 10000,
// stream_mbps 3000, reboot_seconds 120; vm vcpus 1, migratable true, power
// running; update reboot true. Nodes may start `paused: true` or `down: true`.
//
// # Faults
//
// Each entry of faults: has a kind and the fields that kind uses (any other is
// an error). Randomness comes from a stream per fault seeded by the cluster's
// seed, so the same seed and the same calls give the same faults. Faults can be
// added at run time too (Model.InjectFault, POST /v1/admin/faults,
// Driver.InjectFault).
//
//   - migration_fail {vm?, times: N | always: true | probability: P}: the
//     matching migrations (of vm, or of any VM) fail with kind
//     migration_failed at the end of their first round, after paying setup and
//     one full copy; the VM stays on its source. times counts the first N
//     matching migrations.
//   - node_no_return {node, times?: N (default 1) | always: true}: the first N
//     reboots of node end with the node down instead of up. Rebooting the down
//     node (a power cycle) or Model.RecoverNode brings it back.
//   - install_fail {node, update?, times?: N (default 1) | always: true}: the
//     first N installs on node fail for update (or for all pending updates);
//     failed updates stay pending and are listed in InstallResult.Failed.
//   - api_errors {path?, status?: 5xx (503), probability?: P, burst?: N,
//     after_requests?: M, after_apply?: bool}: requests whose path starts with
//     path get status, with probability P and/or for the matching requests
//     M+1..M+N. With after_apply the request takes effect before the error
//     (the ambiguous failure idempotent clients must survive).
//   - api_hang {path?, delay_ms, probability?: P, burst?: N, after_requests?: M}:
//     the chosen requests wait delay_ms of wall time before being handled.
//   - node_crash {node, at_seconds}: at that model time (seconds after the
//     start) node goes down: its running VMs stop (Stats.VMsLostByCrash), its
//     migrations fail. POST /v1/admin/nodes/{node}/crash does it at once.
//
// API faults never hit /v1/stats nor /v1/admin/*.
//
// # Server and driver
//
// The routes are listed on Server. Model time follows wall time x TimeScale.
// The driver retries 5xx and transport errors (every route is idempotent), never
// 4xx, and maps answers to the drivers sentinels. NewEmbedded runs the server
// in-process behind an in-memory http.RoundTripper, so a whole orchestrator run
// works inside a testing/synctest bubble in zero wall time.
//
// # Fuzzing
//
// FuzzParseCluster and FuzzServer_Bodies. Run them with a short minimization
// budget, or the engine spends a minute minimizing each new input:
//
//	go test ./drivers/sim -run '^$' -fuzz FuzzParseCluster -fuzztime 30s -fuzzminimizetime 2s
package sim
