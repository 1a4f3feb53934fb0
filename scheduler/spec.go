package scheduler

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/dux-io/dux/fsm"
)

// Component is the desired state of /components/<name>.
type Component struct {
	Name        string            `json:"name"`
	Image       string            `json:"image"`
	Command     []string          `json:"command,omitempty"`
	Args        []string          `json:"args,omitempty"`
	Env         map[string]string `json:"env,omitempty"`
	Replicas    int               `json:"replicas"`
	Ports       []Port            `json:"ports,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Constraints []Constraint      `json:"constraints,omitempty"`
	Resources   Resources         `json:"resources,omitempty"`
	// Restart is "always" (default), "on-failure" or "never".
	Restart string       `json:"restart,omitempty"`
	Update  UpdatePolicy `json:"update,omitempty"`
	// Strategy is "spread" (default) or "binpack".
	Strategy string `json:"strategy,omitempty"`
	// RescheduleAfter is how long a host must have been failed before its
	// replicas are placed elsewhere (default 1m).
	RescheduleAfter Duration `json:"reschedule_after,omitempty"`
	// Paused keeps the allocations as they are: nothing is added or moved.
	Paused bool `json:"paused,omitempty"`
	// Reads and Writes declare the key prefixes and channels the
	// component's program consumes and updates: each a key or channel, or
	// a prefix ending in "/". They draw the graph of who reads and writes
	// what (its actor is "component/<name>"), in which a cycle is flagged;
	// they change nothing of how it runs, so they are not part of Hash.
	Reads  []string `json:"reads,omitempty"`
	Writes []string `json:"writes,omitempty"`
}

// MaxUses bounds the entries of a spec's reads, and of its writes.
const MaxUses = 64

// ActorPrefix names a component in the graph: its actor is
// "component/<name>".
const ActorPrefix = "component/"

// Actor is the component's name in the graph of who reads and writes what.
func (c *Component) Actor() string { return ActorPrefix + c.Name }

// Port maps a container port, and optionally a host port.
type Port struct {
	Container int    `json:"container"`
	Host      int    `json:"host,omitempty"`
	Protocol  string `json:"protocol,omitempty"` // tcp (default) or udp
}

// Constraint restricts placement by a host label.
type Constraint struct {
	Label string `json:"label"`
	// Op is "=", "!=", "in" or "exists".
	Op     string   `json:"op"`
	Value  string   `json:"value,omitempty"`
	Values []string `json:"values,omitempty"`
}

// Resources are CPU cores and memory bytes.
type Resources struct {
	CPU    float64 `json:"cpu,omitempty"`
	Memory uint64  `json:"memory,omitempty"`
}

// UpdatePolicy bounds a rollout.
type UpdatePolicy struct {
	// MaxUnavailable is how many replicas may be down for replacement at
	// once (default 1).
	MaxUnavailable int `json:"max_unavailable,omitempty"`
}

// Duration is a time.Duration written as "90s" in JSON.
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("want a duration such as \"90s\"")
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// FieldError names the field of a component spec at fault.
type FieldError struct {
	Field   string
	Message string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

// ErrInvalidSpec matches every *FieldError.
var ErrInvalidSpec = errors.New("scheduler: invalid component spec")

func (e *FieldError) Is(target error) bool { return target == ErrInvalidSpec }

var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// ParseComponent decodes and validates a component spec. name is the last
// segment of its key; a spec that names itself must agree.
func ParseComponent(name string, value []byte) (*Component, error) {
	var c Component
	if err := json.Unmarshal(value, &c); err != nil {
		return nil, &FieldError{Field: "spec", Message: err.Error()}
	}
	if c.Name == "" {
		c.Name = name
	}
	if c.Name != name {
		return nil, &FieldError{Field: "name", Message: fmt.Sprintf("%q differs from the key's %q", c.Name, name)}
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// Validate checks the spec and fills defaults; the first problem found
// comes back as a *FieldError.
func (c *Component) Validate() error {
	bad := func(field, format string, args ...any) error {
		return &FieldError{Field: field, Message: fmt.Sprintf(format, args...)}
	}
	switch {
	case !nameRE.MatchString(c.Name):
		return bad("name", "%q: use lower-case letters, digits and dashes", c.Name)
	case c.Image == "":
		return bad("image", "is required")
	case c.Replicas < 0 || c.Replicas > 10000:
		return bad("replicas", "%d: want 0 to 10000", c.Replicas)
	case c.Resources.CPU < 0:
		return bad("resources.cpu", "must not be negative")
	case c.Update.MaxUnavailable < 0:
		return bad("update.max_unavailable", "must not be negative")
	case c.RescheduleAfter < 0:
		return bad("reschedule_after", "must not be negative")
	}
	if c.Restart == "" {
		c.Restart = "always"
	}
	if !slices.Contains([]string{"always", "on-failure", "never"}, c.Restart) {
		return bad("restart", "%q: want always, on-failure or never", c.Restart)
	}
	if c.Strategy == "" {
		c.Strategy = "spread"
	}
	if c.Strategy != "spread" && c.Strategy != "binpack" {
		return bad("strategy", "%q: want spread or binpack", c.Strategy)
	}
	if c.Update.MaxUnavailable == 0 {
		c.Update.MaxUnavailable = 1
	}
	if c.RescheduleAfter == 0 {
		c.RescheduleAfter = Duration(time.Minute)
	}
	hostPorts := map[string]bool{}
	for i, p := range c.Ports {
		f := fmt.Sprintf("ports[%d]", i)
		if p.Protocol == "" {
			c.Ports[i].Protocol = "tcp"
			p.Protocol = "tcp"
		}
		switch {
		case p.Container < 1 || p.Container > 65535:
			return bad(f+".container", "%d: want 1 to 65535", p.Container)
		case p.Host < 0 || p.Host > 65535:
			return bad(f+".host", "%d: want 1 to 65535", p.Host)
		case p.Protocol != "tcp" && p.Protocol != "udp":
			return bad(f+".protocol", "%q: want tcp or udp", p.Protocol)
		}
		if p.Host != 0 {
			k := fmt.Sprintf("%d/%s", p.Host, p.Protocol)
			if hostPorts[k] {
				return bad(f+".host", "host port %s twice", k)
			}
			hostPorts[k] = true
		}
	}
	for _, uses := range []struct {
		field string
		list  []string
	}{{"reads", c.Reads}, {"writes", c.Writes}} {
		if len(uses.list) > MaxUses {
			return bad(uses.field, "%d entries: at most %d", len(uses.list), MaxUses)
		}
		for i, p := range uses.list {
			if err := validateUse(p); err != nil {
				return bad(fmt.Sprintf("%s[%d]", uses.field, i), "%s", err)
			}
		}
	}
	for i, k := range c.Constraints {
		f := fmt.Sprintf("constraints[%d]", i)
		switch {
		case k.Label == "":
			return bad(f+".label", "is required")
		case k.Op == "=" || k.Op == "!=" || k.Op == "exists":
		case k.Op == "in":
			if len(k.Values) == 0 {
				return bad(f+".values", "\"in\" needs values")
			}
		default:
			return bad(f+".op", "%q: want =, !=, in or exists", k.Op)
		}
	}
	return nil
}

// validateUse checks an entry of reads or writes as a subscription's
// channel is checked: a key, or a prefix ending in "/".
func validateUse(p string) error {
	check := fsm.ValidateKey
	if strings.HasSuffix(p, "/") {
		check = fsm.ValidatePrefix
	}
	if err := check(p); err != nil {
		var fe *fsm.Error
		if errors.As(err, &fe) {
			return errors.New(fe.Message)
		}
		return err
	}
	return nil
}

// Hash identifies what a replica runs and where it may run: a change of it
// is a rollout, which also moves replicas off hosts that no longer meet
// changed constraints. Replicas, strategy, pause, the reschedule delay
// and the declared reads and writes are not part of it.
func (c *Component) Hash() string {
	run := struct {
		Image       string            `json:"i"`
		Command     []string          `json:"c"`
		Args        []string          `json:"a"`
		Env         map[string]string `json:"e"`
		Ports       []Port            `json:"p"`
		Labels      map[string]string `json:"l"`
		Resources   Resources         `json:"r"`
		Restart     string            `json:"s"`
		Constraints []Constraint      `json:"k,omitempty"`
	}{c.Image, c.Command, c.Args, c.Env, c.Ports, c.Labels, c.Resources, c.Restart, c.Constraints}
	b, _ := json.Marshal(run) // maps marshal in key order
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// matches reports whether a host's labels satisfy the constraint.
func (k Constraint) matches(labels map[string]string) bool {
	v, ok := labels[k.Label]
	switch k.Op {
	case "=":
		return ok && v == k.Value
	case "!=":
		return !ok || v != k.Value
	case "in":
		return ok && slices.Contains(k.Values, v)
	default: // exists
		return ok
	}
}
