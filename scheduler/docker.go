package scheduler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	"github.com/docker/go-connections/nat"
)

// DockerRuntime runs containers on a Docker Engine through its API.
type DockerRuntime struct {
	cli *client.Client
	// StopTimeout is how long a container has to exit after SIGTERM.
	StopTimeout time.Duration
}

// NewDockerRuntime connects to the engine named by the environment
// (DOCKER_HOST, or the default socket), negotiating the API version.
func NewDockerRuntime() (*DockerRuntime, error) {
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	return &DockerRuntime{cli: cli, StopTimeout: 10 * time.Second}, nil
}

// Close releases the client's connections.
func (d *DockerRuntime) Close() error { return d.cli.Close() }

// Ping reports whether the engine answers.
func (d *DockerRuntime) Ping(ctx context.Context) error {
	_, err := d.cli.Ping(ctx)
	return err
}

func (d *DockerRuntime) List(ctx context.Context, host string) ([]Container, error) {
	list, err := d.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(
		filters.Arg("label", LabelManaged+"=true"),
		filters.Arg("label", LabelHost+"="+host),
	)})
	if err != nil {
		return nil, fmt.Errorf("docker list: %w", err)
	}
	out := make([]Container, 0, len(list))
	for _, s := range list {
		if s.Labels[LabelManaged] != "true" || s.Labels[LabelHost] != host {
			continue // the engine filtered already; this is belt and braces
		}
		c := Container{ID: s.ID, Labels: s.Labels, State: string(s.State)}
		if len(s.Names) > 0 {
			c.Name = s.Names[0]
		}
		// Only an inspection tells the exit code, the error, and, of a
		// running container, whether Docker has just restarted it (one
		// that crash-loops is running between its restarts).
		in, err := d.cli.ContainerInspect(ctx, s.ID)
		if client.IsErrNotFound(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("docker inspect %s: %w", s.ID, err)
		}
		c.Restarts = in.RestartCount
		if in.State != nil {
			c.State, c.ExitCode, c.Error = string(in.State.Status), in.State.ExitCode, in.State.Error
			c.StartedAt, _ = time.Parse(time.RFC3339Nano, in.State.StartedAt)
		}
		out = append(out, c)
	}
	return out, nil
}

func (d *DockerRuntime) EnsureImage(ctx context.Context, ref string) error {
	if _, err := d.cli.ImageInspect(ctx, ref); err == nil {
		return nil
	} else if !client.IsErrNotFound(err) {
		return fmt.Errorf("docker image inspect %s: %w", ref, err)
	}
	rc, err := d.cli.ImagePull(ctx, ref, image.PullOptions{})
	if err != nil {
		return fmt.Errorf("%w: pull %s: %v", ErrImage, ref, err)
	}
	defer rc.Close()
	// The pull reports its failure in the stream, not in its status.
	dec := json.NewDecoder(rc)
	for {
		var m struct {
			Error string `json:"error"`
		}
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return fmt.Errorf("%w: pull %s: %v", ErrImage, ref, err)
		}
		if m.Error != "" {
			return fmt.Errorf("%w: pull %s: %s", ErrImage, ref, m.Error)
		}
	}
	if _, err := d.cli.ImageInspect(ctx, ref); err != nil {
		return fmt.Errorf("%w: %s not present after pull: %v", ErrImage, ref, err)
	}
	return nil
}

func (d *DockerRuntime) Create(ctx context.Context, s ContainerSpec) (string, error) {
	env := make([]string, 0, len(s.Env))
	for k, v := range s.Env {
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	cfg := &container.Config{Image: s.Image, Env: env, Labels: s.Labels, ExposedPorts: nat.PortSet{}}
	if len(s.Command) > 0 {
		cfg.Entrypoint = s.Command
	}
	if len(s.Args) > 0 {
		cfg.Cmd = s.Args
	}
	hc := &container.HostConfig{PortBindings: nat.PortMap{}}
	for _, p := range s.Ports {
		port := nat.Port(strconv.Itoa(p.Container) + "/" + p.Protocol)
		cfg.ExposedPorts[port] = struct{}{}
		if p.Host != 0 {
			hc.PortBindings[port] = append(hc.PortBindings[port], nat.PortBinding{HostPort: strconv.Itoa(p.Host)})
		}
	}
	hc.NanoCPUs = int64(s.Resources.CPU * 1e9)
	hc.Memory = int64(s.Resources.Memory)
	switch s.Restart {
	case "on-failure":
		hc.RestartPolicy = container.RestartPolicy{Name: container.RestartPolicyOnFailure}
	case "never":
		hc.RestartPolicy = container.RestartPolicy{Name: container.RestartPolicyDisabled}
	default: // always; a container Dux stops stays stopped
		hc.RestartPolicy = container.RestartPolicy{Name: container.RestartPolicyUnlessStopped}
	}
	resp, err := d.cli.ContainerCreate(ctx, cfg, hc, nil, nil, s.Name)
	if err != nil {
		return "", fmt.Errorf("docker create %s: %w", s.Name, err)
	}
	return resp.ID, nil
}

func (d *DockerRuntime) Start(ctx context.Context, id string) error {
	if err := d.cli.ContainerStart(ctx, id, container.StartOptions{}); err != nil {
		return fmt.Errorf("docker start: %w", err)
	}
	return nil
}

func (d *DockerRuntime) Remove(ctx context.Context, id string) error {
	secs := int(d.StopTimeout / time.Second)
	if err := d.cli.ContainerStop(ctx, id, container.StopOptions{Timeout: &secs}); err != nil && !client.IsErrNotFound(err) {
		return fmt.Errorf("docker stop: %w", err)
	}
	if err := d.cli.ContainerRemove(ctx, id, container.RemoveOptions{Force: true}); err != nil && !client.IsErrNotFound(err) {
		return fmt.Errorf("docker remove: %w", err)
	}
	return nil
}
