// Command app is the workload of the scheduler's integration tests: it
// prints its environment and runs until it is told to stop. It is built
// static and put in an image FROM scratch.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	fmt.Println("app started; env:", os.Environ())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	s := <-sig
	fmt.Println("app stopping on", s)
}
