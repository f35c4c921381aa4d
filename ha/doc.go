// Package ha makes `drover serve` highly available on etcd: replicas register under
// their names, elect one leader per prefix with etcd's election on a lease
// (go.etcd.io/etcd/client/v3/concurrency), and the leader fences every write of the
// run store with its leadership key (runs.Fence), so that a leader that lost its
// lease (killed, frozen, cut off) cannot write once another replica is elected.
//
// A replica that loses leadership does not try to step down in place: it reports
// the loss (Lost) and the daemon exits, to be restarted as a follower. Its runs are
// resumed by the new leader through the same reconcile path as a restarted process.
package ha
