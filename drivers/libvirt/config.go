package libvirt

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/droverhq/drover/drivers"
	"github.com/droverhq/drover/drivers/updaters"
)

func init() {
	drivers.Register(drivers.Info{Name: "libvirt", NewConfig: func() drivers.Config { return NewConfig() }})
}

// Config is the driver's config section (cluster.libvirt).
type Config struct {
	// Hosts are the cluster's libvirtd hosts (at least one).
	Hosts []HostConfig `mapstructure:"hosts"`
	// SSH, when set, runs the hosts' commands (reboot, ready, boot id) over SSH on each
	// host's ssh_address instead of locally.
	SSH *updaters.SSHConfig `mapstructure:"ssh"`
	// StateDir holds the driver's state (the pause file). Default /var/lib/drover/libvirt.
	StateDir string `mapstructure:"state_dir"`
	// PauseFile overrides the pause file's path (default <state_dir>/paused.json).
	PauseFile string `mapstructure:"pause_file"`
	// PinnedVMs are domains that must not be live-migrated.
	PinnedVMs []string `mapstructure:"pinned_vms"`
	// SharedStorage lists path prefixes of storage every host sees (NFS, cluster file
	// systems): file disks below them do not make a VM non-migratable.
	SharedStorage []string `mapstructure:"shared_storage"`
	// ConnectTimeout bounds a dial plus the libvirt handshake (default 5s).
	ConnectTimeout time.Duration `mapstructure:"connect_timeout"`
	// CallTimeout bounds one round of libvirt calls against a host, e.g. its part of an
	// inventory (default 30s). A daemon that hangs is then reported down.
	CallTimeout time.Duration `mapstructure:"call_timeout"`
	// MigrationTimeout aborts a live migration that has not finished (default 10m);
	// the VM stays on its source and Migrate returns drivers.ErrNotConverged.
	MigrationTimeout time.Duration `mapstructure:"migration_timeout"`
	// PollInterval is how often a migration's progress is read (default 500ms).
	PollInterval time.Duration `mapstructure:"poll_interval"`
	// CommandTimeout bounds the reboot, ready and boot id commands (default 5m).
	CommandTimeout time.Duration `mapstructure:"command_timeout"`
	// DirtyRate: each inventory reads every running domain's page-dirtying rate
	// from libvirt's dirty-rate calculation (libvirt >= 7.2) and starts the next
	// one, for the drain scheduler. Default true; false skips both.
	DirtyRate bool `mapstructure:"dirty_rate"`
	// DirtyRateSeconds is how long one calculation samples (default 1, 1-60).
	DirtyRateSeconds int `mapstructure:"dirty_rate_seconds"`
}

// HostConfig is one libvirtd host.
type HostConfig struct {
	// Name is the node name Drover uses.
	Name string `mapstructure:"name"`
	// URI is how Drover reaches the host's libvirtd: qemu+tcp://HOST[:PORT]/system or
	// qemu+unix:///system?socket=/path/libvirt-sock.
	URI string `mapstructure:"uri"`
	// PeerURI is how the OTHER hosts' libvirtd reach this one during a peer-to-peer
	// migration: qemu+tcp://HOST/system, qemu+tls://HOST/system or
	// qemu+ssh://USER@HOST/system (the source host's libvirtd dials it with its own
	// credentials; Drover never does). Default: URI when it is a TCP URI; required
	// with a UNIX socket URI.
	PeerURI string `mapstructure:"peer_uri"`
	// MigrationURI is where the migration data stream goes (tcp://HOST[:PORT]).
	// Default: tcp://<host of PeerURI>.
	MigrationURI string `mapstructure:"migration_uri"`
	// RebootCommand reboots the host (argv). Required for Drover to reboot it.
	RebootCommand []string `mapstructure:"reboot_command"`
	// ReadyCommand, when set, must exit 0 (besides libvirtd answering) for the host to
	// count as ready after a reboot.
	ReadyCommand []string `mapstructure:"ready_command"`
	// BootIDCommand prints an ID that changes on every boot of the host, e.g.
	// ["cat", "/proc/sys/kernel/random/boot_id"] over SSH.
	BootIDCommand []string `mapstructure:"boot_id_command"`
	// SSHAddress is where the host's commands go when the ssh section is set
	// (host or host:port). Default: the host of URI/PeerURI.
	SSHAddress string `mapstructure:"ssh_address"`
	// NICMbps is the bandwidth of the host's migration network in Mbit/s, shared by
	// every migration into and out of it (libvirt does not report it). 0: unknown,
	// the drain scheduler learns it from the migrations it runs.
	NICMbps float64 `mapstructure:"nic_mbps"`
}

// NewConfig returns the defaults.
func NewConfig() *Config {
	return &Config{
		StateDir:         "/var/lib/drover/libvirt",
		ConnectTimeout:   5 * time.Second,
		CallTimeout:      30 * time.Second,
		MigrationTimeout: 10 * time.Minute,
		PollInterval:     500 * time.Millisecond,
		CommandTimeout:   5 * time.Minute,
		DirtyRate:        true,
		DirtyRateSeconds: 1,
	}
}

// Validate checks the config without I/O; fields are relative to the driver's section.
func (c *Config) Validate() error {
	var errs []error
	if len(c.Hosts) == 0 {
		errs = append(errs, drivers.Fieldf("hosts", "list the libvirtd hosts: - {name: n1, uri: qemu+tcp://10.0.0.1/system}", "no hosts configured"))
	}
	names := map[string]bool{}
	for i, h := range c.Hosts {
		f := fmt.Sprintf("hosts[%d]", i)
		errs = append(errs, drivers.PrefixFields(f, h.validate(c.SSH != nil)))
		if h.Name != "" && names[h.Name] {
			errs = append(errs, drivers.Fieldf(f+".name", "give every host a distinct name", "duplicate host name %q", h.Name))
		}
		names[h.Name] = true
	}
	if c.SSH != nil {
		errs = append(errs, drivers.PrefixFields("ssh", c.SSH.Validate()))
	}
	if c.StateDir == "" && c.PauseFile == "" {
		errs = append(errs, drivers.Fieldf("state_dir", "set state_dir to a folder only drover writes, e.g. /var/lib/drover/libvirt", "required"))
	}
	for i, p := range c.PinnedVMs {
		if strings.TrimSpace(p) == "" {
			errs = append(errs, drivers.Fieldf(fmt.Sprintf("pinned_vms[%d]", i), "remove the empty entry", "empty VM name"))
		}
	}
	for i, p := range c.SharedStorage {
		if !filepath.IsAbs(p) {
			errs = append(errs, drivers.Fieldf(fmt.Sprintf("shared_storage[%d]", i), "use an absolute path prefix such as /mnt/nfs", "not absolute: %q", p))
		}
	}
	for _, d := range []struct {
		field string
		v     time.Duration
	}{
		{"connect_timeout", c.ConnectTimeout}, {"call_timeout", c.CallTimeout}, {"migration_timeout", c.MigrationTimeout},
		{"poll_interval", c.PollInterval}, {"command_timeout", c.CommandTimeout},
	} {
		if d.v <= 0 {
			errs = append(errs, drivers.Fieldf(d.field, "use a positive duration such as 30s", "must be positive, got %s", d.v))
		}
	}
	if c.DirtyRate && (c.DirtyRateSeconds < 1 || c.DirtyRateSeconds > 60) {
		errs = append(errs, drivers.Fieldf("dirty_rate_seconds", "use 1 to 60 seconds (default 1), or set dirty_rate: false", "must be between 1 and 60, got %d", c.DirtyRateSeconds))
	}
	return errors.Join(errs...)
}

func (h HostConfig) validate(ssh bool) error {
	var errs []error
	if h.Name == "" {
		errs = append(errs, drivers.Fieldf("name", "give the host the node name Drover should use", "required"))
	}
	u, err := ParseURI(h.URI)
	if err != nil {
		errs = append(errs, drivers.Fieldf("uri", "use qemu+tcp://HOST/system or qemu+unix:///system?socket=/path/libvirt-sock", "%v", err))
	}
	var peerHost string
	switch {
	case h.PeerURI != "":
		_, p, err := parsePeerURI(h.PeerURI)
		if err != nil {
			errs = append(errs, drivers.Fieldf("peer_uri", "use qemu+tcp://HOST/system, qemu+tls://HOST/system or qemu+ssh://USER@HOST/system as the other hosts' libvirtd reach this host", "%v", err))
		}
		peerHost = p
	case err == nil && u.Transport == "unix":
		errs = append(errs, drivers.Fieldf("peer_uri", "set peer_uri: qemu+tcp://HOST/system, how the other hosts' libvirtd reach this one", "required when uri is a UNIX socket"))
	case err == nil:
		peerHost = u.Host
	}
	if h.MigrationURI != "" {
		if _, err := parseMigrationURI(h.MigrationURI); err != nil {
			errs = append(errs, drivers.Fieldf("migration_uri", "use tcp://HOST or tcp://HOST:PORT", "%v", err))
		}
	}
	for _, c := range []struct {
		field string
		argv  []string
	}{{"reboot_command", h.RebootCommand}, {"ready_command", h.ReadyCommand}, {"boot_id_command", h.BootIDCommand}} {
		if len(c.argv) > 0 && strings.TrimSpace(c.argv[0]) == "" {
			errs = append(errs, drivers.Fieldf(c.field, "give the command as a list: [program, arg, ...]", "empty program name"))
		}
	}
	if h.NICMbps < 0 || h.NICMbps > 10_000_000 || math.IsNaN(h.NICMbps) {
		errs = append(errs, drivers.Fieldf("nic_mbps", "give the migration network's speed in Mbit/s, e.g. 10000, or 0 (unknown: learned)", "must be between 0 and 10000000, got %v", h.NICMbps))
	}
	if ssh && h.SSHAddress == "" && peerHost == "" && u.Host == "" {
		errs = append(errs, drivers.Fieldf("ssh_address", "set ssh_address: commands run over SSH and the URIs name no host", "required"))
	}
	return errors.Join(errs...)
}

// Open connects to nothing yet (hosts are dialed on first use, so one host being down
// does not stop Drover from starting); it loads the pause file and the SSH runner.
func (c *Config) Open(ctx context.Context, env drivers.Env) (drivers.Driver, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return newDriver(ctx, *c, env)
}

// URI is a parsed libvirt connection URI.
type URI struct {
	// Transport is "tcp" or "unix".
	Transport string
	// Host and Port are set for tcp (Port defaults to 16509).
	Host string
	Port string
	// Socket is the UNIX socket path (default /var/run/libvirt/libvirt-sock).
	Socket string
}

// dialAddr returns the network and address to dial.
func (u URI) dialAddr() (network, addr string) {
	if u.Transport == "unix" {
		return "unix", u.Socket
	}
	return "tcp", net.JoinHostPort(u.Host, u.Port)
}

// ParseURI parses qemu+tcp://HOST[:PORT]/system and qemu+unix:///system[?socket=PATH].
// Other drivers, transports and the session daemon are rejected: the driver manages
// the system QEMU driver of each host. Errors never repeat the URI: a mistyped one may
// carry a password.
func ParseURI(s string) (URI, error) {
	if s == "" {
		return URI{}, errors.New("required")
	}
	u, err := parseURL(s)
	if err != nil {
		return URI{}, err
	}
	driver, transport, _ := strings.Cut(u.Scheme, "+")
	if driver != "qemu" {
		return URI{}, fmt.Errorf("scheme %q: only the qemu driver is supported", u.Scheme)
	}
	if u.Path != "/system" || u.RawPath != "" {
		return URI{}, fmt.Errorf("path %q: only /system is supported", u.Path)
	}
	if u.User != nil {
		return URI{}, errors.New("user names in the URI are not supported")
	}
	q := u.Query()
	switch transport {
	case "tcp":
		if u.Hostname() == "" {
			return URI{}, errors.New("qemu+tcp needs a host")
		}
		if err := checkHost(u.Hostname()); err != nil {
			return URI{}, err
		}
		for k := range q {
			return URI{}, fmt.Errorf("unsupported parameter %q", k)
		}
		port := u.Port()
		if port == "" {
			port = "16509"
		} else if err := checkPort(port); err != nil {
			return URI{}, err
		}
		return URI{Transport: "tcp", Host: u.Hostname(), Port: port}, nil
	case "unix":
		if u.Host != "" {
			return URI{}, fmt.Errorf("qemu+unix takes no host (got %q): write qemu+unix:///system", u.Host)
		}
		sock := q.Get("socket")
		for k := range q {
			if k != "socket" {
				return URI{}, fmt.Errorf("unsupported parameter %q", k)
			}
		}
		if sock == "" {
			sock = "/var/run/libvirt/libvirt-sock"
		}
		if !filepath.IsAbs(sock) {
			return URI{}, fmt.Errorf("socket path %q is not absolute", sock)
		}
		return URI{Transport: "unix", Socket: sock}, nil
	case "":
		return URI{}, errors.New("name the transport: qemu+tcp:// or qemu+unix://")
	default:
		return URI{}, fmt.Errorf("transport %q is not supported (tls and ssh transports are not implemented)", transport)
	}
}

// parsePeerURI checks a URI the other hosts' libvirtd dial to reach a host during a
// peer-to-peer migration, and returns it in canonical form (lower-case scheme: the
// URI goes to libvirt as written, and libvirt matches its driver names exactly) with
// its host. The transports are those a libvirtd can dial to another machine; query
// parameters of tls and ssh (pkipath, keyfile, ...) are the source daemon's business.
func parsePeerURI(s string) (canonical, host string, err error) {
	u, err := parseURL(s)
	if err != nil {
		return "", "", err
	}
	driver, transport, _ := strings.Cut(u.Scheme, "+")
	switch {
	case driver != "qemu":
		return "", "", fmt.Errorf("scheme %q: only the qemu driver is supported", u.Scheme)
	case transport == "unix" || transport == "":
		return "", "", errors.New("the other hosts' daemons cannot use a local socket: give a network URI")
	case transport != "tcp" && transport != "tls" && transport != "ssh":
		return "", "", fmt.Errorf("transport %q is not one libvirtd migrates over (tcp, tls, ssh)", transport)
	case u.Hostname() == "":
		return "", "", fmt.Errorf("qemu+%s needs a host", transport)
	case u.Path != "/system" || u.RawPath != "":
		return "", "", fmt.Errorf("path %q: only /system is supported", u.Path)
	case u.User != nil && transport != "ssh":
		return "", "", fmt.Errorf("user names are only meaningful with qemu+ssh, not qemu+%s", transport)
	case u.RawQuery != "" && transport == "tcp":
		return "", "", errors.New("qemu+tcp takes no parameters")
	}
	if _, ok := u.User.Password(); ok {
		return "", "", errors.New("passwords in the URI are not supported: libvirt's ssh transport logs in with the source host's keys")
	}
	if err := checkHost(u.Hostname()); err != nil {
		return "", "", err
	}
	if p := u.Port(); p != "" {
		if err := checkPort(p); err != nil {
			return "", "", err
		}
	}
	return u.Scheme + s[len(u.Scheme):], u.Hostname(), nil
}

// parseMigrationURI checks tcp://HOST[:PORT] and returns it in canonical form.
func parseMigrationURI(s string) (string, error) {
	u, err := parseURL(s)
	if err != nil {
		return "", err
	}
	if u.Scheme != "tcp" || u.Hostname() == "" || (u.Path != "" && u.Path != "/") || u.RawPath != "" || u.RawQuery != "" || u.ForceQuery || u.User != nil {
		return "", errors.New("not of the form tcp://HOST[:PORT]")
	}
	if err := checkHost(u.Hostname()); err != nil {
		return "", err
	}
	if p := u.Port(); p != "" {
		if err := checkPort(p); err != nil {
			return "", err
		}
	}
	return u.Scheme + s[len(u.Scheme):], nil
}

// parseURL parses a libvirt URI; its errors never repeat the URI (drivers.ParseURL).
// Fragments are no part of a libvirt URI.
func parseURL(s string) (*url.URL, error) {
	u, err := drivers.ParseURL(s)
	if err != nil {
		return nil, fmt.Errorf("not a URI: %w", err)
	}
	if strings.Contains(s, "#") {
		return nil, errors.New("not a URI of libvirt: remove the #fragment")
	}
	return u, nil
}

// checkHost refuses hosts that name no machine in particular (0.0.0.0, ::) and
// IPv4 addresses in the shortened, octal or hex forms the C resolver under libvirt
// accepts and Go does not (0, 127.1, 010.0.0.1, 0x7f000001): libvirt and Drover would
// reach different machines.
func checkHost(h string) error {
	if a, err := netip.ParseAddr(h); err == nil {
		if a.Unmap().IsUnspecified() {
			return fmt.Errorf("host %s is the unspecified address: give the host's own address", h)
		}
		return nil
	}
	if strings.Contains(h, ":") {
		return fmt.Errorf("host %q is neither an address nor a host name: write an IPv6 address in brackets, e.g. [fd00::1]", h)
	}
	labels := strings.Split(strings.TrimSuffix(h, "."), ".")
	last := labels[len(labels)-1]
	hex, isHex := strings.CutPrefix(strings.ToLower(last), "0x")
	numeric := last != "" && strings.Trim(last, "0123456789") == ""
	if isHex && strings.Trim(hex, "0123456789abcdef") == "" {
		numeric = true
	}
	if numeric {
		return fmt.Errorf("host %q is not a dotted IPv4 address a.b.c.d nor a host name: write the address in full", h)
	}
	return nil
}

// checkPort checks a port of digits (url.Parse made sure of that) is 1-65535.
func checkPort(p string) error {
	if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port %s out of range 1-65535", p)
	}
	return nil
}

// host is a validated host with its defaults filled in.
type host struct {
	HostConfig
	uri          URI
	peerURI      string
	migrationURI string
	sshAddr      string
}

func (c *Config) resolvedHosts() []host {
	out := make([]host, 0, len(c.Hosts))
	for _, h := range c.Hosts {
		r := host{HostConfig: h}
		r.uri, _ = ParseURI(h.URI) // validated
		r.peerURI = h.PeerURI
		if r.peerURI == "" {
			r.peerURI = h.URI
		}
		var peerHost string
		r.peerURI, peerHost, _ = parsePeerURI(r.peerURI) // validated
		if h.MigrationURI != "" {
			r.migrationURI, _ = parseMigrationURI(h.MigrationURI) // validated
		} else {
			r.migrationURI = "tcp://" + hostForURI(peerHost)
		}
		r.sshAddr = h.SSHAddress
		if r.sshAddr == "" {
			r.sshAddr = peerHost
		}
		out = append(out, r)
	}
	return out
}

// hostForURI brackets IPv6 literals.
func hostForURI(h string) string {
	if strings.Contains(h, ":") {
		return "[" + h + "]"
	}
	return h
}
