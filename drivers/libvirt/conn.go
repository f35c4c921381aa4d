package libvirt

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
	"github.com/digitalocean/go-libvirt/socket/dialers"
)

// conn is one RPC connection to a libvirtd. go-libvirt's calls take no context, so
// every call goes through do, which closes the socket when ctx ends: the pending call
// then fails at once instead of hanging on a stuck daemon.
type conn struct {
	lv *golibvirt.Libvirt
	nc net.Conn
}

// dialConn connects to u and opens the system QEMU driver.
func dialConn(ctx context.Context, u URI, timeout time.Duration) (*conn, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	network, addr := u.dialAddr()
	var d net.Dialer
	nc, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	c := &conn{lv: golibvirt.NewWithDialer(dialers.NewAlreadyConnected(nc)), nc: nc}
	if err := c.do(ctx, func(lv *golibvirt.Libvirt) error { return lv.ConnectToURI(golibvirt.QEMUSystem) }); err != nil {
		nc.Close()
		return nil, fmt.Errorf("connect to libvirtd at %s: %w", addr, err)
	}
	return c, nil
}

// do runs fn on the connection; when ctx ends first, the socket is closed (the
// connection is then dead) and ctx's error returned.
func (c *conn) do(ctx context.Context, fn func(*golibvirt.Libvirt) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- fn(c.lv) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		c.nc.Close()
		<-done
		return ctx.Err()
	}
}

// alive reports whether the connection is still open.
func (c *conn) alive() bool { return c.lv.IsConnected() }

// disconnected is closed when the connection is lost (e.g. libvirtd was killed).
func (c *conn) disconnected() <-chan struct{} { return c.lv.Disconnected() }

// close says goodbye politely when the daemon answers within a second, and closes the
// socket either way.
func (c *conn) close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = c.do(ctx, func(lv *golibvirt.Libvirt) error { return lv.Disconnect() })
	c.nc.Close()
}

// hostConn is the shared connection to one host, re-dialed when it was lost (a rebooted
// host's libvirtd goes away and comes back).
type hostConn struct {
	uri     URI
	timeout time.Duration

	mu sync.Mutex
	c  *conn
}

// get returns a live connection, dialing a new one if needed.
func (h *hostConn) get(ctx context.Context) (*conn, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.c != nil && h.c.alive() {
		return h.c, nil
	}
	if h.c != nil {
		h.c.nc.Close()
		h.c = nil
	}
	c, err := dialConn(ctx, h.uri, h.timeout)
	if err != nil {
		return nil, err
	}
	h.c = c
	return c, nil
}

// current returns the connection in use, nil when there is none.
func (h *hostConn) current() *conn {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.c
}

// do runs fn on a live connection. A call that fails because the connection died is
// reported as errConnLost, so callers can tell "host unreachable" from a libvirt error.
func (h *hostConn) do(ctx context.Context, fn func(*golibvirt.Libvirt) error) error {
	c, err := h.get(ctx)
	if err != nil {
		return fmt.Errorf("%w: %v", errConnLost, err)
	}
	err = c.do(ctx, fn)
	if err != nil && !c.alive() && ctx.Err() == nil {
		return fmt.Errorf("%w: %v", errConnLost, err)
	}
	return err
}

// close drops the connection.
func (h *hostConn) close() {
	h.mu.Lock()
	c := h.c
	h.c = nil
	h.mu.Unlock()
	if c != nil {
		c.close()
	}
}

// errConnLost marks failures to reach a host's libvirtd (dial failed, connection died).
var errConnLost = errors.New("libvirtd unreachable")
