// Package cluster wires the StateStore into a cluster: hashicorp/raft with
// raft-boltdb/v2 and file snapshots for consensus, hashicorp/memberlist for
// discovery and bootstrap, leader forwarding of writes, linearizable reads
// through a coalesced read index, and the leader's lease clock.
//
// See DESIGN.md for why it is built this way.
package cluster
