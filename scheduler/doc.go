// Package scheduler places components on hosts. Its heart is Plan, a pure
// function from the desired components, the hosts and the current
// allocations to the changes that bring them together; the leader loop
// commits a plan through Raft guarded by the revisions it read, and an
// executor on every member converges its own Docker Engine to the
// allocations placed on it.
//
// This file set holds the component spec and the planner; see DESIGN.md.
package scheduler
