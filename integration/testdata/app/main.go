// Command app is the workload of the scheduler's integration tests: it
// prints its environment and runs until it is told to stop. With
// APP_EXIT=<code> it exits with that code after APP_EXIT_AFTER (a Go
// duration, default at once), to crash as a broken program does. It is
// built static and put in an image FROM scratch.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

func main() {
	fmt.Println("app started; env:", os.Environ())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	var crash <-chan time.Time
	code, err := strconv.Atoi(os.Getenv("APP_EXIT"))
	if err == nil {
		after, _ := time.ParseDuration(os.Getenv("APP_EXIT_AFTER"))
		crash = time.After(after)
	}
	select {
	case s := <-sig:
		fmt.Println("app stopping on", s)
	case <-crash:
		fmt.Println("app crashing with exit code", code)
		os.Exit(code)
	}
}
