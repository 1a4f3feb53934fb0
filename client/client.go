package client

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"

	"github.com/dux-io/dux/proto"
)

// MaxMessageBytes is the largest gRPC message the client sends or accepts.
const MaxMessageBytes = 64 << 20

// Config configures a Client.
type Config struct {
	// Endpoints are the gRPC addresses (host:port) of the members to use.
	// One reachable member is enough; requests are spread over all that are.
	Endpoints []string
	// DialTimeout, if positive, makes New wait up to that long until at
	// least one endpoint accepts a connection, and fail with ErrUnavailable
	// otherwise. Zero connects in the background; the first request then
	// fails with ErrUnavailable if no member can be reached.
	DialTimeout time.Duration

	// dialOptions are added to the connection's options; tests use them to
	// dial an in-memory listener.
	dialOptions []grpc.DialOption
}

// DefaultConfig is a member on this host at the default gRPC port.
func DefaultConfig() Config {
	return Config{Endpoints: []string{"127.0.0.1:7700"}, DialTimeout: 5 * time.Second}
}

// Validate checks the endpoints.
func (c Config) Validate() error {
	if len(c.Endpoints) == 0 {
		return errors.New("client: no endpoints")
	}
	for _, e := range c.Endpoints {
		if strings.TrimSpace(e) == "" {
			return errors.New("client: empty endpoint")
		}
	}
	if c.DialTimeout < 0 {
		return fmt.Errorf("client: negative dial timeout %s", c.DialTimeout)
	}
	return nil
}

// Client talks to a Dux cluster. It is safe for concurrent use; create one
// and share it.
type Client struct {
	conn       *grpc.ClientConn
	state      proto.StateClient
	cluster    proto.ClusterClient
	dispatcher proto.DispatcherClient
	graph      proto.GraphClient
	retry      backoff
}

// roundRobin spreads RPCs over every connected endpoint; an endpoint whose
// connection fails is left out until it reconnects.
const roundRobin = `{"loadBalancingConfig":[{"round_robin":{}}]}`

// New connects to the cluster. Close the Client when done.
func New(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	// A manual resolver hands gRPC the fixed list of members; round_robin
	// keeps a connection to each.
	r := manual.NewBuilderWithScheme("dux")
	eps := make([]resolver.Endpoint, len(cfg.Endpoints))
	for i, e := range cfg.Endpoints {
		eps[i] = resolver.Endpoint{Addresses: []resolver.Address{{Addr: strings.TrimSpace(e)}}}
	}
	r.InitialState(resolver.State{Endpoints: eps})
	opts := append([]grpc.DialOption{
		grpc.WithResolvers(r),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(roundRobin),
		// Find a dead connection (a member paused or cut off) within
		// seconds, not when the kernel gives up on TCP.
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 10 * time.Second, Timeout: 5 * time.Second}),
		grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(MaxMessageBytes),
			grpc.MaxCallSendMsgSize(MaxMessageBytes),
		),
	}, cfg.dialOptions...)
	conn, err := grpc.NewClient(r.Scheme()+":///members", opts...)
	if err != nil {
		return nil, fmt.Errorf("client: connect to %s: %w", strings.Join(cfg.Endpoints, ","), err)
	}
	c := &Client{
		conn:       conn,
		state:      proto.NewStateClient(conn),
		cluster:    proto.NewClusterClient(conn),
		dispatcher: proto.NewDispatcherClient(conn),
		graph:      proto.NewGraphClient(conn),
		retry:      defaultBackoff,
	}
	if cfg.DialTimeout > 0 {
		if err := c.waitReady(cfg.DialTimeout); err != nil {
			conn.Close()
			return nil, fmt.Errorf("%w: no member reachable at %s within %s", ErrUnavailable,
				strings.Join(cfg.Endpoints, ","), cfg.DialTimeout)
		}
	}
	return c, nil
}

// waitReady waits until a connection to some endpoint is up.
func (c *Client) waitReady(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c.conn.Connect()
	for {
		s := c.conn.GetState()
		if s == connectivity.Ready {
			return nil
		}
		if !c.conn.WaitForStateChange(ctx, s) {
			return ctx.Err()
		}
	}
}

// Close closes the connections. Requests in flight fail with Canceled.
func (c *Client) Close() error {
	return c.conn.Close()
}
