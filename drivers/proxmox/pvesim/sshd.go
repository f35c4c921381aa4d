package pvesim

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	gssh "github.com/gliderlabs/ssh"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/droverhq/drover/drivers/proxmox/pvemark"
)

// SSHServer is every node's sshd: it accepts the one authorized key for root and runs
// only the exact commands a PVE node would run for Drover, answering as the node does.
// Any other command is refused (exit 127) and recorded as a violation.
type SSHServer struct {
	model      *Model
	authorized ssh.PublicKey
	log        *slog.Logger

	mu    sync.Mutex
	nodes map[string]*sshNode
}

type sshNode struct {
	name   string
	addr   string
	signer ssh.Signer
	srv    *gssh.Server
	up     bool
}

// NewSSHServer builds the servers; authorized is the client's public key.
func NewSSHServer(model *Model, authorized ssh.PublicKey, log *slog.Logger) *SSHServer {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &SSHServer{model: model, authorized: authorized, log: log, nodes: map[string]*sshNode{}}
}

// Listen starts node's sshd on addr with a fresh host key; it returns the address.
func (s *SSHServer) Listen(node, addr string) (string, error) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", err
	}
	signer, err := ssh.NewSignerFromKey(key)
	if err != nil {
		return "", err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", err
	}
	n := &sshNode{name: node, addr: ln.Addr().String(), signer: signer}
	s.mu.Lock()
	s.nodes[node] = n
	s.serve(n, ln)
	s.mu.Unlock()
	return n.addr, nil
}

func (s *SSHServer) serve(n *sshNode, ln net.Listener) {
	n.srv = &gssh.Server{
		Handler:     func(sess gssh.Session) { s.session(n.name, sess) },
		HostSigners: []gssh.Signer{n.signer},
		PublicKeyHandler: func(ctx gssh.Context, key gssh.PublicKey) bool {
			return ctx.User() == "root" && gssh.KeysEqual(key, s.authorized)
		},
	}
	n.up = true
	go func() { _ = n.srv.Serve(ln) }()
}

// KnownHosts returns known_hosts lines for every node's sshd.
func (s *SSHServer) KnownHosts() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	for _, n := range s.nodes {
		b.WriteString(knownhosts.Line([]string{knownhosts.Normalize(n.addr)}, n.signer.PublicKey()) + "\n")
	}
	return b.String()
}

// Watch closes a node's sshd while it is down and reopens it when it is back.
func (s *SSHServer) Watch(ctx context.Context, tick time.Duration) {
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			s.Close()
			return
		case <-t.C:
		}
		s.mu.Lock()
		for _, n := range s.nodes {
			online := s.model.Online(n.name)
			switch {
			case n.up && !online:
				_ = n.srv.Close()
				n.up = false
			case !n.up && online:
				ln, err := net.Listen("tcp", n.addr)
				if err != nil {
					continue
				}
				s.serve(n, ln)
			}
		}
		s.mu.Unlock()
	}
}

// Close stops every sshd.
func (s *SSHServer) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range s.nodes {
		if n.up {
			_ = n.srv.Close()
			n.up = false
		}
	}
}

func (s *SSHServer) session(node string, sess gssh.Session) {
	line := sess.RawCommand()
	argv, err := SplitShell(line)
	if err != nil {
		argv = nil
	}
	s.model.mu.Lock()
	s.model.stats.SSHCommands = append(s.model.stats.SSHCommands, node+": "+line)
	s.model.mu.Unlock()
	code := s.run(sess.Context(), node, argv, sess, sess.Stderr())
	_ = sess.Exit(code)
}

// run answers one command as a PVE node does; it returns the exit status.
func (s *SSHServer) run(ctx context.Context, node string, argv []string, stdout, stderr io.Writer) int {
	m := s.model
	cmd := strings.Join(argv, " ")
	if isJobScript(argv) {
		// The apt plug-in's detached upgrade: only the calls it makes, byte for byte.
		if code, ok := s.aptJobCall(ctx, node, argv, stdout); ok {
			return code
		}
		m.Violation("ssh %s: unexpected call of the apt job script: %q", node, strings.Join(argv[4:], " "))
		fmt.Fprintln(stderr, "drover-job: unexpected call")
		return 127
	}
	if pvemark.IsCall(argv) {
		if code, ok := m.markCall(argv, stdout); ok {
			return code
		}
		m.Violation("ssh %s: unexpected call of the pause mark script: %q", node, strings.Join(argv[4:], " "))
		return 127
	}
	switch {
	case len(argv) == 5 && strings.HasPrefix(cmd, "ha-manager crm-command node-maintenance ") && (argv[3] == "enable" || argv[3] == "disable"):
		if err := m.SetMaintenance(argv[4], argv[3] == "enable"); err != nil {
			fmt.Fprintln(stderr, err)
			return 255
		}
		return 0
	case len(argv) == 4 && argv[0] == "ceph" && argv[1] == "osd" && (argv[2] == "set" || argv[2] == "unset") && argv[3] == "noout":
		m.SetFlag("noout", argv[2] == "set")
		fmt.Fprintf(stderr, "noout is %s\n", argv[2])
		return 0
	case cmd == "env LC_ALL=C apt-get update -qq":
		return 0
	case cmd == "env LC_ALL=C apt list --upgradable":
		fmt.Fprint(stdout, "\nWARNING: apt does not have a stable CLI interface. Use with caution in scripts.\n\nListing...\n")
		m.mu.Lock()
		for _, p := range m.nodes[node].Pending {
			fmt.Fprintf(stdout, "%s/stable %s amd64 [upgradable from: %s]\n", p.Name, p.Version, p.OldVersion)
		}
		m.mu.Unlock()
		return 0
	case cmd == "test -f /var/run/reboot-required":
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.nodes[node].RebootRequired {
			return 0
		}
		return 1
	case cmd == "cat /proc/sys/kernel/random/boot_id":
		m.mu.Lock()
		defer m.mu.Unlock()
		fmt.Fprintln(stdout, m.nodes[node].BootID)
		return 0
	}
	m.Violation("ssh %s: unexpected command %q", node, cmd)
	name := "sh"
	if len(argv) > 0 {
		name = argv[0]
	}
	fmt.Fprintf(stderr, "bash: %s: command not found\n", name)
	return 127
}

// SplitShell splits a POSIX shell command line of plain words and single- or
// double-quoted strings (what updaters.ShellJoin writes) into argv.
func SplitShell(line string) ([]string, error) {
	var out []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == '\'':
			j := strings.IndexByte(line[i+1:], '\'')
			if j < 0 {
				return nil, fmt.Errorf("unterminated single quote")
			}
			cur.WriteString(line[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case c == '"':
			i++
			for ; i < len(line) && line[i] != '"'; i++ {
				if line[i] == '\\' && i+1 < len(line) {
					i++
				}
				cur.WriteByte(line[i])
			}
			if i >= len(line) {
				return nil, fmt.Errorf("unterminated double quote")
			}
			inWord = true
		case c == '\\' && i+1 < len(line):
			i++
			cur.WriteByte(line[i])
			inWord = true
		case c == ' ' || c == '\t' || c == '\n':
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		out = append(out, cur.String())
	}
	return out, nil
}
