package scheduler

import (
	"context"
	"errors"
	"time"
)

// Labels every container made by Dux carries. A container without
// LabelManaged is never touched.
const (
	LabelManaged   = "dux.managed"
	LabelHost      = "dux.host"
	LabelComponent = "dux.component"
	LabelAlloc     = "dux.alloc"
	LabelSpec      = "dux.spec"
)

// Runtime runs containers on one host. DockerRuntime is the real one; the
// scheduler's tests use an in-memory fake. The executor calls its methods
// concurrently (a pull beside creations beside removals), and every call
// honours ctx.
type Runtime interface {
	// Ping reports whether the engine answers. The executor asks at the
	// start of every pass, and does nothing else with an engine that does
	// not.
	Ping(ctx context.Context) error
	// List returns the containers Dux made for host: those labelled
	// dux.managed=true and dux.host=host, running or not, with their
	// state, exit code, restarts and start time.
	List(ctx context.Context, host string) ([]Container, error)
	// EnsureImage pulls the image unless it is present; the error of a
	// pull that fails says why.
	EnsureImage(ctx context.Context, image string) error
	// Create creates (but does not start) a container and returns its ID.
	Create(ctx context.Context, spec ContainerSpec) (string, error)
	// Start starts a created or exited container.
	Start(ctx context.Context, id string) error
	// Remove stops the container (SIGTERM, then SIGKILL after a grace
	// period) and removes it. A container already gone is not an error.
	Remove(ctx context.Context, id string) error
}

// Container is a container as the runtime reports it.
type Container struct {
	ID     string
	Name   string
	Labels map[string]string
	// State is created, running, restarting, paused, exited, dead or
	// removing (Docker's words).
	State string
	// ExitCode is the last exit code: Docker resets it to 0 when it
	// starts the container again.
	ExitCode int
	// Error is the runtime's reason a container failed to start.
	Error string
	// Restarts counts the times the engine restarted the container under
	// its restart policy; StartedAt is when it last started.
	Restarts  int
	StartedAt time.Time
}

// ContainerSpec is what the executor asks the runtime to create.
type ContainerSpec struct {
	Name      string
	Image     string
	Command   []string
	Args      []string
	Env       map[string]string
	Labels    map[string]string
	Ports     []Port
	Resources Resources
	// Restart is the component's restart policy: always, on-failure or
	// never.
	Restart string
}

// ErrImage marks an image that is missing and could not be pulled.
var ErrImage = errors.New("image not available")
