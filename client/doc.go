// Package client is the Go client of a Dux cluster's gRPC API.
//
// A Client connects to every member named in Config.Endpoints and spreads
// requests over them round robin; a member that is down is skipped. Any
// member accepts any request: followers forward writes to the leader.
//
//	c, err := client.New(client.Config{Endpoints: []string{"10.0.0.1:7700", "10.0.0.2:7700"}})
//	if err != nil {
//		return err
//	}
//	defer c.Close()
//
//	if _, err := c.Put(ctx, "/config/app/db", []byte(`{"host":"db-1"}`), client.WithOrigin("deployer")); err != nil {
//		return err
//	}
//	kv, _, err := c.Get(ctx, "/config/app/db")
//	if errors.Is(err, fsm.ErrNotFound) {
//		return nil // deleted meanwhile
//	} else if err != nil {
//		return err
//	}
//	// A compare-and-set on the mod revision just read: it fails with an
//	// error matching fsm.ErrCompareFailed (an *fsm.Error whose Revision is
//	// the key's current one) if someone else wrote the key in between.
//	_, err = c.Put(ctx, kv.Key, []byte(`{"host":"db-2"}`), client.WithCAS(kv.ModRevision))
//
// # Errors
//
// Errors the cluster returns come back typed: bad input, a missing key or
// lease, and a failed compare are *fsm.Error values, matched with
// errors.Is(err, fsm.ErrInvalid), fsm.ErrNotFound or fsm.ErrCompareFailed;
// their Field names the part of the request at fault and, for a failed
// compare, Revision is the key's current mod revision. A cluster that cannot
// serve the request (no leader, no member reachable) gives an error that
// matches ErrUnavailable. Every other error is the gRPC status as received.
//
// # Retries
//
// Reads (Get, List, ListAll, Leader, RaftConfiguration) are retried a few
// times with a short backoff on Unavailable, within the caller's context.
// Writes are never retried: a write that failed with Unavailable may still
// have been applied, and only the caller can tell whether to try again (a
// compare-and-set makes that safe).
package client
