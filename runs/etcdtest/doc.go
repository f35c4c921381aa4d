// Package etcdtest starts a real etcd cluster for tests: members of etcd's own
// embedded server (go.etcd.io/etcd/server/v3/embed) on loopback ports, in the
// test's temporary folder, stopped when the test ends. Only tests import it, so the
// drover binary does not carry the etcd server.
package etcdtest
