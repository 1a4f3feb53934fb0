// Package integration tests Dux end to end: real duxd processes on
// loopback with real Raft over TCP, real BoltDB files and real gossip, and,
// in the fault-tolerance tests, real containers. The tests carry the build
// tag `integration`; `make test` runs them.
package integration
