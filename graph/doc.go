// Package graph is the graph of who reads and who writes which part of the
// state: actors (programs) and prefixes (key prefixes and channels), with
// an edge from an actor to each prefix it writes and from each prefix to
// every actor that reads it. An actor depends on another when it reads a
// prefix that the other writes; a cycle of such dependencies is a feedback
// loop, in which changes can chase each other round the cluster.
//
// The package is pure: a Builder takes what is declared, built in or
// observed, and Build returns the nodes, the edges and every cycle, found
// with Tarjan's strongly connected components, in a deterministic order.
// It knows nothing of where the uses come from; see DESIGN.md.
package graph
