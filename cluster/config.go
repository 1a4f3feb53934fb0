package cluster

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/dux-io/dux/fsm"
)

// Config configures one member. Fields left zero take DefaultConfig's value.
type Config struct {
	// Name is the member's unique name and its Raft server ID.
	Name string
	// DataDir holds the Raft log (raft.db) and snapshots.
	DataDir string
	// RaftAddr is the host:port the Raft TCP transport listens on.
	RaftAddr string
	// GossipAddr is the host:port memberlist listens on (TCP and UDP).
	GossipAddr string
	// GRPCAddr and HTTPAddr are this member's client addresses, gossiped so
	// that followers can forward to the leader and clients can find it.
	GRPCAddr string
	HTTPAddr string
	// Advertise, if set, is the host other members should use to reach this
	// one, in place of the host of each listen address.
	Advertise string
	// BootstrapExpect is the number of servers to wait for before
	// bootstrapping a new cluster; 0 joins an existing cluster only.
	BootstrapExpect int
	// Join lists gossip addresses of existing members to join at start.
	Join []string
	// Dev starts a single member that bootstraps at once.
	Dev bool
	// Voters is the number of Raft voters the leader keeps (3 or 5); the
	// rest join as non-voters.
	Voters int
	// MaxValueBytes limits one value.
	MaxValueBytes int
	// ApplyTimeout bounds how long a write waits for a leader.
	ApplyTimeout time.Duration
	// SnapshotThreshold is the number of log entries between snapshots.
	SnapshotThreshold uint64
	// SnapshotInterval is how often Raft checks whether to snapshot.
	SnapshotInterval time.Duration
	// TrailingLogs is the number of entries kept after a snapshot.
	TrailingLogs uint64
	// HeartbeatTimeout and ElectionTimeout tune Raft's failure detection.
	HeartbeatTimeout time.Duration
	ElectionTimeout  time.Duration
	// Version is gossiped to other members.
	Version string
	// Labels describe the host (zone=a, disk=ssd); gossiped and written to
	// /hosts/<name> for the scheduler's constraints.
	Labels map[string]string
	// Resources are the host's CPU cores and memory, detected or set.
	Resources Resources
	// CheckValue, if set, validates a value written to a key beyond the
	// generic rules (a component spec at /components/<name>, say), on the
	// member that receives the write, before it is proposed. A *fsm.Error
	// is returned as it is; any other error becomes an invalid "value".
	CheckValue func(key string, value []byte) error
	// EncryptKey, if set, encrypts gossip (16, 24 or 32 bytes, AES).
	EncryptKey []byte
	// GossipProfile is "lan" (default) or "local" (faster failure
	// detection, for members on one host).
	GossipProfile string
	// DeadNodeReclaimTime is how long a failed member's name stays bound to
	// its address before a member at another address may take it.
	DeadNodeReclaimTime time.Duration
	// DeadServerTimeout is how long a failed member stays in Raft before
	// it is removed.
	DeadServerTimeout time.Duration
	// MinQuorum is the fewest voters that removing failed members may leave.
	MinQuorum int
	// ReconcileInterval is how often the leader reconciles gossip into Raft
	// and /hosts/ (it also does on every gossip change).
	ReconcileInterval time.Duration
	// UnsafeStaleReads serves every read from local state, linearizable or
	// not. It exists only so that tests can show their linearizability
	// checker catches stale reads; never set it in production.
	UnsafeStaleReads bool
	// Logger receives the member's logs, and raft's and memberlist's.
	Logger *slog.Logger
}

// Resources are what a host offers to run components.
type Resources struct {
	// CPU is in cores.
	CPU float64 `json:"cpu"`
	// Memory is in bytes.
	Memory uint64 `json:"memory"`
}

// DefaultConfig returns the defaults of a member.
func DefaultConfig() Config {
	return Config{
		Name:              "dux",
		DataDir:           "dux-data",
		RaftAddr:          "127.0.0.1:7702",
		GossipAddr:        "127.0.0.1:7703",
		GRPCAddr:          "127.0.0.1:7700",
		HTTPAddr:          "127.0.0.1:7701",
		Voters:            3,
		MaxValueBytes:     fsm.DefaultMaxValueBytes,
		ApplyTimeout:      10 * time.Second,
		SnapshotThreshold: 8192,
		SnapshotInterval:  30 * time.Second,
		TrailingLogs:      10240,
		HeartbeatTimeout:  1000 * time.Millisecond,
		ElectionTimeout:   1000 * time.Millisecond,

		GossipProfile:       "lan",
		DeadNodeReclaimTime: 10 * time.Second,
		DeadServerTimeout:   3 * time.Minute,
		MinQuorum:           3,
		ReconcileInterval:   2 * time.Second,
	}
}

// ErrConfig marks an invalid configuration.
var ErrConfig = errors.New("cluster: invalid config")

// Validate checks the configuration and fills zero fields with defaults.
func (c *Config) Validate() error {
	d := DefaultConfig()
	if c.Voters == 0 {
		c.Voters = d.Voters
	}
	if c.MaxValueBytes == 0 {
		c.MaxValueBytes = d.MaxValueBytes
	}
	if c.ApplyTimeout == 0 {
		c.ApplyTimeout = d.ApplyTimeout
	}
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = d.SnapshotThreshold
	}
	if c.SnapshotInterval == 0 {
		c.SnapshotInterval = d.SnapshotInterval
	}
	if c.TrailingLogs == 0 {
		c.TrailingLogs = d.TrailingLogs
	}
	if c.HeartbeatTimeout == 0 {
		c.HeartbeatTimeout = d.HeartbeatTimeout
	}
	if c.ElectionTimeout == 0 {
		c.ElectionTimeout = d.ElectionTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.GossipProfile == "" {
		c.GossipProfile = d.GossipProfile
	}
	if c.DeadNodeReclaimTime == 0 {
		c.DeadNodeReclaimTime = d.DeadNodeReclaimTime
	}
	if c.DeadServerTimeout == 0 {
		c.DeadServerTimeout = d.DeadServerTimeout
	}
	if c.ReconcileInterval == 0 {
		c.ReconcileInterval = d.ReconcileInterval
	}
	switch {
	case !validName(c.Name):
		return fmt.Errorf("%w: name %q: use 1 to 64 letters, digits, '.', '_' or '-', not \".\" or \"..\"", ErrConfig, c.Name)
	case c.GossipProfile != "lan" && c.GossipProfile != "local":
		return fmt.Errorf("%w: gossip profile %q: want lan or local", ErrConfig, c.GossipProfile)
	case len(c.EncryptKey) != 0 && len(c.EncryptKey) != 16 && len(c.EncryptKey) != 24 && len(c.EncryptKey) != 32:
		return fmt.Errorf("%w: encryption key is %d bytes; want 16, 24 or 32", ErrConfig, len(c.EncryptKey))
	case c.MinQuorum < 0:
		return fmt.Errorf("%w: min-quorum %d is negative", ErrConfig, c.MinQuorum)
	case c.DataDir == "":
		return fmt.Errorf("%w: data dir is empty", ErrConfig)
	case c.BootstrapExpect < 0:
		return fmt.Errorf("%w: bootstrap-expect %d is negative", ErrConfig, c.BootstrapExpect)
	case c.Dev && c.BootstrapExpect > 1:
		return fmt.Errorf("%w: dev mode bootstraps one member; bootstrap-expect %d conflicts", ErrConfig, c.BootstrapExpect)
	case c.Voters != 3 && c.Voters != 5:
		return fmt.Errorf("%w: voters must be 3 or 5, got %d", ErrConfig, c.Voters)
	}
	for flag, addr := range map[string]string{
		"raft-addr": c.RaftAddr, "gossip-addr": c.GossipAddr, "grpc-addr": c.GRPCAddr, "http-addr": c.HTTPAddr,
	} {
		if _, _, err := splitHostPort(addr); err != nil {
			return fmt.Errorf("%w: %s %q: %v", ErrConfig, flag, addr, err)
		}
	}
	if c.Advertise != "" && net.ParseIP(c.Advertise) == nil {
		return fmt.Errorf("%w: advertise %q is not an IP address", ErrConfig, c.Advertise)
	}
	for _, j := range c.Join {
		if _, _, err := splitHostPort(j); err != nil {
			return fmt.Errorf("%w: join %q: %v", ErrConfig, j, err)
		}
	}
	return nil
}

// validName reports whether a member name can be a key segment
// (/hosts/<name>) and a Raft server ID.
func validName(name string) bool {
	if name == "" || len(name) > 64 || name == "." || name == ".." {
		return false
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

func splitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port %q", p)
	}
	return host, port, nil
}

// advertised returns addr with its host replaced by the advertise address, if any.
func (c *Config) advertised(addr string) string {
	if c.Advertise == "" {
		return addr
	}
	_, port, _ := net.SplitHostPort(addr)
	return net.JoinHostPort(c.Advertise, port)
}
