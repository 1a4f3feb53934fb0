package cluster

import (
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/dux-io/dux/proto"
)

// peerPool keeps one gRPC connection per peer address, for forwarding.
type peerPool struct {
	mu     sync.Mutex
	conns  map[string]*grpc.ClientConn
	closed bool // once closed, no connection is made again
}

func newPeerPool() *peerPool {
	return &peerPool{conns: make(map[string]*grpc.ClientConn)}
}

func (p *peerPool) conn(addr string) *grpc.ClientConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.conns[addr]; ok {
		return c
	}
	// NewClient does not dial; it fails only on a malformed target, which
	// then fails every call on the connection with a clear error.
	c, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20), grpc.MaxCallSendMsgSize(64<<20)))
	if err != nil {
		c, _ = grpc.NewClient("passthrough:///invalid-address", grpc.WithTransportCredentials(insecure.NewCredentials()))
	}
	if p.closed {
		// A late caller (a forwarder draining at shutdown) gets a closed
		// connection: its calls fail at once, and nothing is left open.
		c.Close()
		return c
	}
	p.conns[addr] = c
	return c
}

func (p *peerPool) internal(addr string) proto.InternalClient {
	return proto.NewInternalClient(p.conn(addr))
}

func (p *peerPool) cluster(addr string) proto.ClusterClient {
	return proto.NewClusterClient(p.conn(addr))
}

func (p *peerPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for addr, c := range p.conns {
		c.Close()
		delete(p.conns, addr)
	}
}
