package wsmantest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Netns is a lab network where each node is a host of its own: one network namespace
// per node (hv-<id>-n<i>, address 10.98.<x>.<i>), joined by a bridge in a namespace of
// its own (hv-<id>-br), which the test's namespace reaches through a veth with
// 10.98.<x>.254. A node that goes down loses its link, so packets to it go nowhere.
// It needs root and iproute2.
type Netns struct {
	id     string
	subnet string // 10.98.<x>
	nodes  map[string]int
}

// netnsSeq tells apart the labs of one process.
var netnsSeq atomic.Int32

// NewNetns creates the namespaces and links for nodes (in order: .1, .2, ...).
func NewNetns(nodes []string) (*Netns, error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("network namespaces need root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return nil, fmt.Errorf("network namespaces need iproute2: %w", err)
	}
	pid := os.Getpid()
	seq := int(netnsSeq.Add(1))
	n := &Netns{id: fmt.Sprintf("%d%d", pid%100000, seq%10), subnet: fmt.Sprintf("10.98.%d", (pid+seq)%250), nodes: map[string]int{}}
	br, host, peer := n.ns("br"), "hvh"+n.id, "hvb"+n.id
	steps := [][]string{
		{"netns", "add", br},
		{"-n", br, "link", "set", "lo", "up"},
		{"-n", br, "link", "add", "br0", "type", "bridge"},
		{"-n", br, "link", "set", "br0", "up"},
		{"link", "add", host, "type", "veth", "peer", "name", peer, "netns", br},
		{"addr", "add", n.subnet + ".254/24", "dev", host},
		{"link", "set", host, "up"},
		{"-n", br, "link", "set", peer, "master", "br0", "up"},
	}
	for i, node := range nodes {
		idx := i + 1
		n.nodes[node] = idx
		ns := n.ns("n" + strconv.Itoa(idx))
		steps = append(steps,
			[]string{"netns", "add", ns},
			[]string{"-n", ns, "link", "set", "lo", "up"},
			[]string{"-n", ns, "link", "add", n.link(idx), "type", "veth", "peer", "name", n.peer(idx), "netns", br},
			[]string{"-n", ns, "addr", "add", fmt.Sprintf("%s.%d/24", n.subnet, idx), "dev", n.link(idx)},
			[]string{"-n", ns, "link", "set", n.link(idx), "up"},
			[]string{"-n", br, "link", "set", n.peer(idx), "master", "br0", "up"},
		)
	}
	for _, s := range steps {
		if err := ip(s...); err != nil {
			n.Close()
			return nil, err
		}
	}
	return n, nil
}

func (n *Netns) ns(suffix string) string { return "hv-" + n.id + "-" + suffix }
func (n *Netns) link(i int) string       { return fmt.Sprintf("hvn%sx%d", n.id, i) }
func (n *Netns) peer(i int) string       { return fmt.Sprintf("hvp%sx%d", n.id, i) }

func ip(args ...string) error {
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// IP is node's address.
func (n *Netns) IP(node string) net.IP {
	return net.ParseIP(fmt.Sprintf("%s.%d", n.subnet, n.nodes[node]))
}

// IPs are all node addresses.
func (n *Netns) IPs() []net.IP {
	var out []net.IP
	for node := range n.nodes {
		out = append(out, n.IP(node))
	}
	return out
}

// Listen opens a TCP listener on addr inside node's namespace: a thread enters the
// namespace, creates the socket (which stays in it) and ends.
func (n *Netns) Listen(node, addr string) (net.Listener, error) {
	type res struct {
		ln  net.Listener
		err error
	}
	ch := make(chan res, 1)
	go func() {
		// The thread is never unlocked: it ends with the goroutine, namespace and all.
		runtime.LockOSThread()
		f, err := os.Open(filepath.Join("/var/run/netns", n.ns("n"+strconv.Itoa(n.nodes[node]))))
		if err != nil {
			ch <- res{err: err}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- res{err: fmt.Errorf("setns: %w", err)}
			return
		}
		ln, err := net.Listen("tcp", addr)
		ch <- res{ln, err}
	}()
	r := <-ch
	return r.ln, r.err
}

// SetLink takes node's link down (the host is gone) or up.
func (n *Netns) SetLink(node string, up bool) error {
	state := "down"
	if up {
		state = "up"
	}
	return ip("-n", n.ns("n"+strconv.Itoa(n.nodes[node])), "link", "set", n.link(n.nodes[node]), state)
}

// Close deletes every namespace and link it made.
func (n *Netns) Close() {
	_ = exec.Command("ip", "link", "del", "hvh"+n.id).Run()
	for _, i := range n.nodes {
		_ = exec.Command("ip", "netns", "del", n.ns("n"+strconv.Itoa(i))).Run()
	}
	_ = exec.Command("ip", "netns", "del", n.ns("br")).Run()
}
