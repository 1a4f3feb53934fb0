package client_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dux-io/dux/client"
	"github.com/dux-io/dux/fsm"
)

// Moves a key to a new value only if nobody changed it since it was read.
func Example() {
	c, err := client.New(client.Config{Endpoints: []string{"127.0.0.1:7700"}})
	if err != nil {
		panic(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	kv, _, err := c.Get(ctx, "/config/app/db")
	if err != nil {
		fmt.Println("get:", err)
		return
	}
	_, err = c.Put(ctx, kv.Key, []byte(`{"host":"db-2"}`), client.WithCAS(kv.ModRevision), client.WithOrigin("example"))
	var fe *fsm.Error
	switch {
	case errors.As(err, &fe) && errors.Is(err, fsm.ErrCompareFailed):
		fmt.Println("changed meanwhile; now at revision", fe.Revision)
	case errors.Is(err, client.ErrUnavailable):
		fmt.Println("cluster unavailable; the write may or may not have applied:", err)
	case err != nil:
		fmt.Println("put:", err)
	}
}

// Lists every key under a prefix, page by page, from the local member.
func ExampleClient_ListAll() {
	c, err := client.New(client.DefaultConfig())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	kvs, rev, err := c.ListAll(context.Background(), "/hosts/", client.Stale(), client.WithKeysOnly())
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(len(kvs), "hosts at revision", rev)
}
