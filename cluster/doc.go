// Package cluster is Drover's domain model: a cluster's inventory (nodes, VMs, networks),
// updates and the field errors every layer reports bad input with.
//
// Boundary: plain types and their own consistency checks only. It imports nothing of
// Drover's, so drivers (which report an Inventory), policies (which decide on one) and
// the run store (which records one) share it without importing each other.
package cluster
