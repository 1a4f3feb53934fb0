// Package fsm is the StateStore: the Raft finite-state machine that holds
// Dux's declarative state.
//
// Keys are slash paths (/config/app/db) and values are JSON documents. Every
// command is one Raft log entry, and the entry's index is the revision of the
// write: each key keeps the revision that created it, the revision that last
// modified it and a version that counts its writes since creation.
//
// Apply is deterministic: it reads no clock, draws no random number and does
// no I/O. Times that matter (lease expiry) are decided by the leader and
// arrive as commands. A command that breaks a rule (a failed compare, an
// unknown lease) changes nothing and returns the violation as its result; an
// entry that cannot be decoded panics, because replicas must never diverge.
//
// The package knows nothing of networks, Raft wiring or gossip. See DESIGN.md.
package fsm
