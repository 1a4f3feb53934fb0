// Command subscriber prints every change under /config/, starting with the
// current state, and follows the cluster across member failures.
//
//	go run ./examples/subscriber 127.0.0.1:7700
package main

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/dux-io/dux/client"
)

func main() {
	c, err := client.New(client.Config{Endpoints: os.Args[1:]})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	sub := c.Subscribe(context.Background(), []string{"/config/"}, client.WithState())
	for {
		ev, err := sub.Recv()
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(ev.Revision, ev.Type, ev.Kv.GetKey(), string(ev.Kv.GetValue()))
	}
}
