// Package metrics holds what Dux's Prometheus metrics share: one agent's
// registry (not the process-wide default, so that several agents in one
// process, as in tests, keep their figures apart), the handler that serves
// it, and the collector that reads the dispatcher's figures when scraped.
//
// Collectors that need a package's internals live beside what they
// measure: cluster.Node.Collector (Raft, the StateStore, gossip) and
// rpc.Metrics (gRPC and HTTP requests). docs/OPERATIONS.md lists every
// family.
package metrics
