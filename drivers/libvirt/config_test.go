package libvirt

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"

	"github.com/droverhq/drover/cluster"
	"github.com/droverhq/drover/drivers"
)

func TestParseURI(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    URI
		wantErr string
	}{
		{name: "tcp", in: "qemu+tcp://10.99.0.1/system", want: URI{Transport: "tcp", Host: "10.99.0.1", Port: "16509"}},
		{name: "tcp-port", in: "qemu+tcp://node1.example:16600/system", want: URI{Transport: "tcp", Host: "node1.example", Port: "16600"}},
		{name: "tcp-ipv6", in: "qemu+tcp://[fd00::1]/system", want: URI{Transport: "tcp", Host: "fd00::1", Port: "16509"}},
		{name: "unix-socket", in: "qemu+unix:///system?socket=/tmp/drover-lab/hostA/sock/libvirt-sock", want: URI{Transport: "unix", Socket: "/tmp/drover-lab/hostA/sock/libvirt-sock"}},
		{name: "unix-default-socket", in: "qemu+unix:///system", want: URI{Transport: "unix", Socket: "/var/run/libvirt/libvirt-sock"}},
		{name: "empty", in: "", wantErr: "required"},
		{name: "no-transport", in: "qemu:///system", wantErr: "name the transport"},
		{name: "tls", in: "qemu+tls://h/system", wantErr: `transport "tls" is not supported`},
		{name: "ssh", in: "qemu+ssh://root@h/system", wantErr: "user names"},
		{name: "xen", in: "xen+tcp://h/system", wantErr: "only the qemu driver"},
		{name: "session", in: "qemu+unix:///session", wantErr: "only /system"},
		{name: "tcp-no-host", in: "qemu+tcp:///system", wantErr: "needs a host"},
		{name: "tcp-param", in: "qemu+tcp://h/system?no_verify=1", wantErr: "unsupported parameter"},
		{name: "unix-with-host", in: "qemu+unix://h/system", wantErr: "takes no host"},
		{name: "unix-relative-socket", in: "qemu+unix:///system?socket=sock", wantErr: "not absolute"},
		{name: "garbage", in: "::", wantErr: "not a URI"},
		{name: "unspecified-ipv4", in: "qemu+tcp://0.0.0.0/system", wantErr: "unspecified address"},
		{name: "unspecified-ipv6", in: "qemu+tcp://[::]/system", wantErr: "unspecified address"},
		{name: "shortened-ipv4", in: "qemu+tcp://0/system", wantErr: `host "0" is not a dotted IPv4 address`},
		{name: "shortened-ipv4-mixed-case-scheme", in: "qemu+tCp://127.1/system", wantErr: "not a dotted IPv4 address"},
		{name: "octal-ipv4", in: "qemu+tcp://010.0.0.1/system", wantErr: "not a dotted IPv4 address"},
		{name: "hex-ipv4", in: "qemu+tcp://0x7f000001/system", wantErr: "not a dotted IPv4 address"},
		{name: "bare-colons-as-host", in: "qemu+tCp://::/system", wantErr: "IPv6 address in brackets"},
		{name: "host-name-with-digits", in: "qemu+tcp://kvm-10.0a/system", want: URI{Transport: "tcp", Host: "kvm-10.0a", Port: "16509"}},
		{name: "mixed-case-scheme", in: "QEMU+TCP://kvm1/system", want: URI{Transport: "tcp", Host: "kvm1", Port: "16509"}},
		{name: "port-zero", in: "qemu+tcp://h:0/system", wantErr: "port 0 out of range"},
		{name: "port-too-large", in: "qemu+tcp://h:65536/system", wantErr: "port 65536 out of range"},
		{name: "escaped-path", in: "qemu+tcp://h/%73ystem", wantErr: "only /system"},
		{name: "fragment", in: "qemu+tcp://h/system#x", wantErr: "fragment"},
		{name: "password-not-echoed", in: "qemu+tcp://root:hunter22@h:x/system", wantErr: "not a URI"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseURI(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || strings.Contains(err.Error(), "hunter22") {
					t.Fatalf("ParseURI(%q) = %+v, %v; want error containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseURI(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
			}
		})
	}
}

// FuzzParseURI also fuzzes parsePeerURI and parseMigrationURI: all three read the
// hosts' URIs from the config. What they accept is complete and canonical (the peer
// and migration URIs go to libvirt as returned); what they refuse is never echoed
// with its user info, which may be a password.
func FuzzParseURI(f *testing.F) {
	for _, s := range []string{"qemu+tcp://10.99.0.1/system", "qemu+unix:///system?socket=/x", "qemu+tcp://[::1]:1/system", "qemu+ssh://u@h/system",
		"qemu+tls://h.example/system?pkipath=/p", "%zz", "tcp://10.0.0.1:49152", "qemu+ssh://root:secretpw@h/system", "qemu+tcp://root:secretpw@h:x/system",
		"tcp://u:secretpw@h:1%zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		canon, host, err := parsePeerURI(s)
		noSecretEchoed(t, "parsePeerURI", s, err)
		if err == nil {
			if !strings.HasPrefix(canon, "qemu+tcp://") && !strings.HasPrefix(canon, "qemu+tls://") && !strings.HasPrefix(canon, "qemu+ssh://") {
				t.Fatalf("parsePeerURI(%q) = %q: not a canonical network URI", s, canon)
			}
			if n := len("qemu+tcp"); len(canon) != len(s) || !strings.EqualFold(canon[:n], s[:n]) || canon[n:] != s[n:] {
				t.Fatalf("parsePeerURI(%q) = %q: more than the scheme's case changed", s, canon)
			}
			if host == "" || checkHost(host) != nil {
				t.Fatalf("parsePeerURI(%q) accepted host %q", s, host)
			}
			if c2, h2, err := parsePeerURI(canon); err != nil || c2 != canon || h2 != host {
				t.Fatalf("parsePeerURI(%q) = %q, %q, %v; not stable on its own output %q", canon, c2, h2, err, canon)
			}
			if mig, err := parseMigrationURI("tcp://" + hostForURI(host)); err != nil {
				t.Fatalf("default migration URI of peer %q refused: %v (%s)", s, err, mig)
			}
		}
		mig, err := parseMigrationURI(s)
		noSecretEchoed(t, "parseMigrationURI", s, err)
		if err == nil {
			if !strings.HasPrefix(mig, "tcp://") || !strings.EqualFold(mig, s) {
				t.Fatalf("parseMigrationURI(%q) = %q", s, mig)
			}
			if again, err := parseMigrationURI(mig); err != nil || again != mig {
				t.Fatalf("parseMigrationURI(%q) = %q, %v; not stable", mig, again, err)
			}
		}
		u, err := ParseURI(s)
		noSecretEchoed(t, "ParseURI", s, err)
		if err != nil {
			return
		}
		switch u.Transport {
		case "tcp":
			port, perr := strconv.Atoi(u.Port)
			if u.Host == "" || checkHost(u.Host) != nil || perr != nil || port < 1 || port > 65535 || u.Socket != "" {
				t.Fatalf("accepted incomplete tcp URI %q: %+v", s, u)
			}
			// A TCP URI is the default peer URI.
			if _, host, err := parsePeerURI(s); err != nil || host != u.Host {
				t.Fatalf("tcp URI %q accepted, but not as a peer URI: %q, %v", s, host, err)
			}
		case "unix":
			if !filepath.IsAbs(u.Socket) || u.Host != "" {
				t.Fatalf("accepted bad unix URI %q: %+v", s, u)
			}
		default:
			t.Fatalf("accepted %q with transport %q", s, u.Transport)
		}
	})
}

// noSecretEchoed fails when err repeats the user info of s (what lies between "//"
// and the last "@" of the authority), which may hold a password.
func noSecretEchoed(t *testing.T, fn, s string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	_, rest, ok := strings.Cut(s, "//")
	if !ok {
		return
	}
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		rest = rest[:i]
	}
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return
	}
	userinfo := rest[:at]
	_, pw, hasPW := strings.Cut(userinfo, ":")
	if hasPW && len(pw) >= 4 && strings.Contains(err.Error(), pw) {
		t.Fatalf("%s(%q) error repeats the password %q: %v", fn, s, pw, err)
	}
}

func TestConfig_Validate(t *testing.T) {
	tcpHost := func(name, ip string) map[string]any {
		return map[string]any{"name": name, "uri": "qemu+tcp://" + ip + "/system"}
	}
	tests := []struct {
		name      string
		raw       map[string]any
		wantField []string
	}{
		{name: "tcp-hosts", raw: map[string]any{"hosts": []any{tcpHost("a", "10.0.0.1"), tcpHost("b", "10.0.0.2")}}},
		{name: "unix-host-with-peer", raw: map[string]any{"hosts": []any{map[string]any{
			"name": "a", "uri": "qemu+unix:///system?socket=/s", "peer_uri": "qemu+tcp://10.0.0.1/system",
			"reboot_command": []any{"lab.sh", "reboot-host", "a"}, "migration_uri": "tcp://10.0.0.1:49152",
		}}}},
		{name: "no-hosts", raw: map[string]any{}, wantField: []string{"hosts"}},
		{name: "bad-uri", raw: map[string]any{"hosts": []any{map[string]any{"name": "a", "uri": "qemu+tls://h/system"}}}, wantField: []string{"hosts[0].uri"}},
		{name: "unix-without-peer", raw: map[string]any{"hosts": []any{map[string]any{"name": "a", "uri": "qemu+unix:///system"}}}, wantField: []string{"hosts[0].peer_uri"}},
		{name: "peer-not-tcp", raw: map[string]any{"hosts": []any{map[string]any{"name": "a", "uri": "qemu+unix:///system", "peer_uri": "qemu+unix:///system"}}}, wantField: []string{"hosts[0].peer_uri"}},
		{name: "peer-tls-and-ssh", raw: map[string]any{"hosts": []any{
			map[string]any{"name": "a", "uri": "qemu+unix:///system?socket=/a", "peer_uri": "qemu+tls://kvm1.example/system?pkipath=/etc/pki/drover"},
			map[string]any{"name": "b", "uri": "qemu+tcp://10.0.0.2/system", "peer_uri": "qemu+ssh://root@kvm2.example:2222/system?keyfile=/root/.ssh/migrate"},
		}}},
		{name: "peer-user-without-ssh", raw: map[string]any{"hosts": []any{map[string]any{"name": "a", "uri": "qemu+unix:///system", "peer_uri": "qemu+tls://root@h/system"}}}, wantField: []string{"hosts[0].peer_uri"}},
		{name: "bad-migration-uri", raw: map[string]any{"hosts": []any{map[string]any{"name": "a", "uri": "qemu+tcp://h/system", "migration_uri": "udp://h"}}}, wantField: []string{"hosts[0].migration_uri"}},
		{name: "duplicate-name", raw: map[string]any{"hosts": []any{tcpHost("a", "10.0.0.1"), tcpHost("a", "10.0.0.2")}}, wantField: []string{"hosts[1].name"}},
		{name: "missing-name", raw: map[string]any{"hosts": []any{map[string]any{"uri": "qemu+tcp://h/system"}}}, wantField: []string{"hosts[0].name"}},
		{name: "empty-reboot-program", raw: map[string]any{"hosts": []any{map[string]any{"name": "a", "uri": "qemu+tcp://h/system", "reboot_command": []any{""}}}}, wantField: []string{"hosts[0].reboot_command"}},
		{name: "bad-timeout", raw: map[string]any{"hosts": []any{tcpHost("a", "h")}, "migration_timeout": "0s"}, wantField: []string{"migration_timeout"}},
		{name: "relative-shared-storage", raw: map[string]any{"hosts": []any{tcpHost("a", "h")}, "shared_storage": []any{"nfs"}}, wantField: []string{"shared_storage[0]"}},
		{name: "ssh-errors-prefixed", raw: map[string]any{"hosts": []any{tcpHost("a", "h")}, "ssh": map[string]any{"key_file": "k"}}, wantField: []string{"ssh.user"}},
		{name: "no-state-dir", raw: map[string]any{"hosts": []any{tcpHost("a", "h")}, "state_dir": ""}, wantField: []string{"state_dir"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info, ok := drivers.Lookup("libvirt")
			if !ok {
				t.Fatal("driver libvirt not registered")
			}
			c := info.NewConfig()
			if err := drivers.Decode(tt.raw, c); err != nil {
				t.Fatalf("Decode: %v", err)
			}
			err := c.Validate()
			var got []string
			for _, e := range flatten(err) {
				var fe *drivers.FieldError
				if !errors.As(e, &fe) {
					t.Fatalf("error %v is not a *drivers.FieldError", e)
				}
				if fe.Fix == "" {
					t.Errorf("field error %v has no fix", fe)
				}
				got = append(got, fe.Field)
			}
			if strings.Join(got, ",") != strings.Join(tt.wantField, ",") {
				t.Fatalf("error fields = %v, want %v (%v)", got, tt.wantField, err)
			}
		})
	}
}

func flatten(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}

func TestParsePeerURI(t *testing.T) {
	tests := []struct {
		name, in, host, canonical, wantErr string
	}{
		{name: "tcp", in: "qemu+tcp://10.0.0.2/system", host: "10.0.0.2"},
		{name: "tcp-ipv6-port", in: "qemu+tcp://[fd00::2]:16600/system", host: "fd00::2"},
		{name: "tls-with-pkipath", in: "qemu+tls://kvm2.example/system?pkipath=/etc/pki/x", host: "kvm2.example"},
		{name: "ssh-with-user", in: "qemu+ssh://root@kvm2/system?keyfile=/k", host: "kvm2"},
		{name: "unix", in: "qemu+unix:///system", wantErr: "local socket"},
		{name: "no-transport", in: "qemu:///system", wantErr: "local socket"},
		{name: "libssh-transport", in: "qemu+libssh2://h/system", wantErr: "not one libvirtd migrates over"},
		{name: "xen", in: "xen+tcp://h/system", wantErr: "only the qemu driver"},
		{name: "no-host", in: "qemu+tcp:///system", wantErr: "needs a host"},
		{name: "session", in: "qemu+tcp://h/session", wantErr: "only /system"},
		{name: "user-on-tcp", in: "qemu+tcp://root@h/system", wantErr: "only meaningful with qemu+ssh"},
		{name: "params-on-tcp", in: "qemu+tcp://h/system?x=1", wantErr: "no parameters"},
		// libvirt matches driver names exactly: the URI handed to it is lower-cased.
		{name: "mixed-case-scheme", in: "Qemu+TCP://kvm2/system", host: "kvm2", canonical: "qemu+tcp://kvm2/system"},
		{name: "mixed-case-scheme-found-by-fuzzing", in: "qemu+tCp://0/system", wantErr: `host "0" is not a dotted IPv4 address`},
		{name: "unspecified-host", in: "qemu+tls://0.0.0.0/system", wantErr: "unspecified address"},
		{name: "ssh-password", in: "qemu+ssh://root:hunter22@kvm2/system", wantErr: "passwords in the URI are not supported"},
		{name: "bad-port", in: "qemu+tcp://h:99999/system", wantErr: "port 99999 out of range"},
		{name: "fragment", in: "qemu+ssh://h/system#frag", wantErr: "fragment"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			canon, host, err := parsePeerURI(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parsePeerURI(%q) = %q, %v; want an error with %q", tt.in, host, err, tt.wantErr)
				}
				return
			}
			want := tt.canonical
			if want == "" {
				want = tt.in
			}
			if err != nil || host != tt.host || canon != want {
				t.Fatalf("parsePeerURI(%q) = %q, %q, %v; want %q, %q", tt.in, canon, host, err, want, tt.host)
			}
		})
	}
}

func TestParseMigrationURI(t *testing.T) {
	tests := []struct {
		name, in, want, wantErr string
	}{
		{name: "host", in: "tcp://10.0.0.3", want: "tcp://10.0.0.3"},
		{name: "host-port", in: "tcp://[fd00::3]:49152", want: "tcp://[fd00::3]:49152"},
		{name: "trailing-slash", in: "tcp://h/", want: "tcp://h/"},
		{name: "mixed-case-scheme", in: "TCP://h:49152", want: "tcp://h:49152"},
		{name: "udp", in: "udp://h", wantErr: "not of the form tcp://HOST[:PORT]"},
		{name: "path", in: "tcp://h/x", wantErr: "not of the form"},
		{name: "query", in: "tcp://h?x", wantErr: "not of the form"},
		{name: "empty-query", in: "tcp://h?", wantErr: "not of the form"},
		{name: "user-not-echoed", in: "tcp://root:hunter22@h", wantErr: "not of the form"},
		{name: "unspecified", in: "tcp://0.0.0.0:49152", wantErr: "unspecified address"},
		{name: "shortened", in: "tcp://10.1", wantErr: "not a dotted IPv4 address"},
		{name: "port-zero", in: "tcp://h:0", wantErr: "port 0 out of range"},
		{name: "bad-escape-not-echoed", in: "tcp://u:hunter22@h:1%zz", wantErr: "not a URI"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseMigrationURI(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || strings.Contains(err.Error(), "hunter22") {
					t.Fatalf("parseMigrationURI(%q) = %q, %v; want an error with %q, without the password", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("parseMigrationURI(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestConfig_ResolvedHosts(t *testing.T) {
	c := NewConfig()
	c.Hosts = []HostConfig{
		{Name: "a", URI: "qemu+unix:///system?socket=/s", PeerURI: "qemu+tcp://10.99.0.1/system"},
		{Name: "b", URI: "qemu+tcp://[fd00::2]:16600/system", SSHAddress: "b.example:2222"},
		{Name: "c", URI: "qemu+tcp://10.0.0.3/system", MigrationURI: "tcp://192.168.9.3:49152"},
		{Name: "d", URI: "qemu+unix:///system?socket=/d", PeerURI: "qemu+ssh://root@kvm4.example/system"},
	}
	got := c.resolvedHosts()
	want := []struct{ peer, mig, ssh string }{
		{"qemu+tcp://10.99.0.1/system", "tcp://10.99.0.1", "10.99.0.1"},
		{"qemu+tcp://[fd00::2]:16600/system", "tcp://[fd00::2]", "b.example:2222"},
		{"qemu+tcp://10.0.0.3/system", "tcp://192.168.9.3:49152", "10.0.0.3"},
		{"qemu+ssh://root@kvm4.example/system", "tcp://kvm4.example", "kvm4.example"},
	}
	for i, w := range want {
		if got[i].peerURI != w.peer || got[i].migrationURI != w.mig || got[i].sshAddr != w.ssh {
			t.Errorf("host %s: peer=%q migration=%q ssh=%q; want %+v", got[i].Name, got[i].peerURI, got[i].migrationURI, got[i].sshAddr, w)
		}
	}
}

func TestParseDomainXML(t *testing.T) {
	const head = `<domain type='qemu'><name>vm1</name>`
	tests := []struct {
		name string
		xml  string
		want domainInfo
	}{
		{name: "diskless-lab-guest", xml: head + `<devices><serial type='file'><source path='/tmp/x.log' append='on'/></serial></devices></domain>`},
		{name: "metadata-marker", xml: head + `<metadata><drover:drover xmlns:drover="` + MetadataNS + `" migratable="no" reason="license bound to host" anti_affinity="web" anti_affinity_hard="yes" preferred_node="hostB"/></metadata></domain>`,
			want: domainInfo{NotMigratable: "marked non-migratable: license bound to host", AntiAffinity: "web", AntiAffinityHard: true, PreferredNode: "hostB"}},
		{name: "metadata-migratable", xml: head + `<metadata><d:drover xmlns:d="` + MetadataNS + `" migratable="yes" anti_affinity="db"/></metadata></domain>`,
			want: domainInfo{AntiAffinity: "db"}},
		{name: "foreign-metadata-ignored", xml: head + `<metadata><x:drover xmlns:x="https://example.com/other" migratable="no"/></metadata></domain>`},
		{name: "hostdev", xml: head + `<devices><hostdev mode='subsystem' type='pci'/></devices></domain>`,
			want: domainInfo{NotMigratable: "has 1 host device(s) passed through"}},
		// Local disks move with the VM (storage migration): they do not make it
		// non-migratable; the disks' locality is TestDomainDisks's.
		{name: "local-file-disk", xml: head + `<devices><disk type='file' device='disk'><source file='/var/lib/libvirt/images/vm1.qcow2'/><target dev='vda'/></disk></devices></domain>`},
		{name: "network-disk", xml: head + `<devices><disk type='network' device='disk'><source protocol='rbd' name='pool/vm1'/><target dev='vda'/></disk></devices></domain>`},
		{name: "pool-volume", xml: head + `<devices><disk type='volume' device='disk'><source pool='default' volume='vm1.qcow2'/><target dev='vda'/></disk></devices></domain>`},
		{name: "local-disk-and-hostdev", xml: head + `<devices><disk type='file' device='disk'><source file='/img/vm1.qcow2'/><target dev='vda'/></disk><hostdev mode='subsystem' type='pci'/></devices></domain>`,
			want: domainInfo{NotMigratable: "has 1 host device(s) passed through"}},
		{name: "virtiofs", xml: head + `<devices><filesystem type='mount'><driver type='virtiofs'/><source dir='/srv'/><target dir='srv'/></filesystem></devices></domain>`,
			want: domainInfo{NotMigratable: "shares a host folder into srv"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseDomainXML(tt.xml)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
	if _, err := parseDomainXML("<domain><unclosed>"); err == nil {
		t.Fatal("broken XML accepted")
	}
}

func FuzzParseDomainXML(f *testing.F) {
	f.Add(`<domain><devices><disk type='file' device='disk'><source file='/x'/></disk></devices></domain>`)
	f.Add(`<domain><metadata><d:drover xmlns:d="` + MetadataNS + `" migratable="no"/></metadata></domain>`)
	f.Fuzz(func(t *testing.T, s string) {
		// Must not panic; a domain it cannot read is an error, never "migratable".
		info, err := parseDomainXML(s)
		if err != nil && info != (domainInfo{}) {
			t.Fatalf("error %v with non-zero info %+v", err, info)
		}
	})
}

func TestPauseStore(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state", "paused.json")
	s, err := newPauseStore(path)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)
	steps := []struct {
		name   string
		host   string
		paused bool
		want   []string
	}{
		{name: "pause-a", host: "hostA", paused: true, want: []string{"hostA"}},
		{name: "pause-a-again-idempotent", host: "hostA", paused: true, want: []string{"hostA"}},
		{name: "pause-c", host: "hostC", paused: true, want: []string{"hostA", "hostC"}},
		{name: "resume-a", host: "hostA", paused: false, want: []string{"hostC"}},
		{name: "resume-b-never-paused", host: "hostB", paused: false, want: []string{"hostC"}},
	}
	for i, st := range steps {
		if err := s.Set(st.host, st.paused, "", t0.Add(time.Duration(i)*time.Minute)); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		// A fresh store (a restarted Drover) must see the same.
		s2, err := newPauseStore(path)
		if err != nil {
			t.Fatal(err)
		}
		got, err := s2.Paused()
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, st.want) {
			t.Fatalf("%s: paused = %v, want %v", st.name, got, st.want)
		}
	}
	if p, _ := s.IsPaused("hostC"); !p {
		t.Fatal("IsPaused(hostC) = false")
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("pause file mode = %v, want 0600", fi.Mode().Perm())
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Fatalf("state dir holds %d entries, want only the pause file (no temp files left)", len(entries))
	}
	// The original pause time survives a repeated pause.
	data, _ := os.ReadFile(path)
	if !strings.Contains(string(data), "2026-11-22T03:02:00Z") {
		t.Fatalf("pause time of hostC lost: %s", data)
	}
}

func TestPauseStore_Concurrent(t *testing.T) {
	s, err := newPauseStore(filepath.Join(t.TempDir(), "paused.json"))
	if err != nil {
		t.Fatal(err)
	}
	hosts := []string{"h1", "h2", "h3", "h4", "h5", "h6", "h7", "h8"}
	var wg sync.WaitGroup
	for _, h := range hosts {
		wg.Go(func() {
			if err := s.Set(h, true, "", time.Unix(0, 0)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	got, err := s.Paused()
	if err != nil || !reflect.DeepEqual(got, hosts) {
		t.Fatalf("paused = %v, %v; want all of %v (no lost update)", got, err, hosts)
	}
}

func TestPauseStore_Corrupt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "paused.json")
	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := newPauseStore(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("corrupt pause file: err = %v, want one naming the file", err)
	}
}

func TestDriver_PauseRejectsMigration(t *testing.T) {
	c := NewConfig()
	c.StateDir = t.TempDir()
	c.Hosts = []HostConfig{
		// Nothing listens on these sockets: the pause check must come first, with no I/O.
		{Name: "a", URI: "qemu+unix:///system?socket=/nonexistent/a", PeerURI: "qemu+tcp://127.0.0.1:1/system"},
		{Name: "b", URI: "qemu+unix:///system?socket=/nonexistent/b", PeerURI: "qemu+tcp://127.0.0.1:2/system"},
	}
	drv, err := c.Open(t.Context(), drivers.Env{})
	if err != nil {
		t.Fatal(err)
	}
	defer drv.Close()
	if err := drv.PauseNode(t.Context(), "b", ""); err != nil {
		t.Fatal(err)
	}
	_, err = drv.Migrate(t.Context(), drivers.MigrateRequest{VM: "vm1", From: "a", To: "b"}, nil)
	if !errors.Is(err, drivers.ErrRejected) || !strings.Contains(err.Error(), "paused") {
		t.Fatalf("Migrate onto paused host: %v, want ErrRejected naming the pause", err)
	}
	if err := drv.PauseNode(t.Context(), "nope", ""); !errors.Is(err, drivers.ErrNotFound) {
		t.Fatalf("PauseNode(unknown) = %v, want ErrNotFound", err)
	}
	inv, err := drv.Inventory(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range inv.Nodes {
		// Why the host is down, for analyze to name: the socket that did not answer.
		if !strings.Contains(n.Problem, "/nonexistent/"+n.Name) {
			t.Errorf("node %s: problem %q does not name its socket", n.Name, n.Problem)
		}
		inv.Nodes[i].Problem = ""
	}
	want := []cluster.Node{{Name: "a", State: cluster.NodeDown}, {Name: "b", State: cluster.NodeDown, Paused: true}}
	if !reflect.DeepEqual(inv.Nodes, want) {
		t.Fatalf("nodes = %+v, want %+v", inv.Nodes, want)
	}
	if err := drv.ResumeNode(t.Context(), "b"); err != nil {
		t.Fatal(err)
	}
	_, err = drv.Migrate(t.Context(), drivers.MigrateRequest{VM: "vm1", From: "a", To: "b"}, nil)
	if !errors.Is(err, drivers.ErrUnavailable) {
		t.Fatalf("Migrate with hosts down: %v, want ErrUnavailable", err)
	}
}

func TestMergeDomains(t *testing.T) {
	running := func(host string) domainInstance {
		return domainInstance{host: host, name: "vm1", state: golibvirt.DomainRunning, memKiB: 112 << 10, vcpus: 1}
	}
	outgoing := running("hostA")
	outgoing.jobActive, outgoing.jobOp = true, golibvirt.DomainJobOperationStrMigrationOut
	incoming := domainInstance{host: "hostB", name: "vm1", state: golibvirt.DomainPaused, reason: int32(golibvirt.DomainPausedMigration), jobActive: true, jobOp: golibvirt.DomainJobOperationStrMigrationIn}
	stopcopy := outgoing
	stopcopy.state, stopcopy.reason = golibvirt.DomainPaused, int32(golibvirt.DomainPausedMigration)
	shutoff := domainInstance{host: "hostC", name: "vm1", state: golibvirt.DomainShutoff}
	userPaused := running("hostA")
	userPaused.state, userPaused.reason = golibvirt.DomainPaused, int32(golibvirt.DomainPausedUser)

	tests := []struct {
		name  string
		insts []domainInstance
		want  cluster.VM
	}{
		{name: "single-running", insts: []domainInstance{running("hostA")},
			want: cluster.VM{Name: "vm1", Node: "hostA", MemoryMiB: 112, VCPUs: 1, Power: cluster.PowerRunning, Migratable: true}},
		{name: "mid-migration-incoming-listed-first", insts: []domainInstance{incoming, outgoing},
			want: cluster.VM{Name: "vm1", Node: "hostA", MemoryMiB: 112, VCPUs: 1, Power: cluster.PowerRunning, Migratable: true, MigratingTo: "hostB"}},
		{name: "stop-and-copy-both-paused", insts: []domainInstance{stopcopy, incoming},
			want: cluster.VM{Name: "vm1", Node: "hostA", MemoryMiB: 112, VCPUs: 1, Power: cluster.PowerRunning, Migratable: true, MigratingTo: "hostB"}},
		{name: "running-beats-stale-shutoff-copy", insts: []domainInstance{shutoff, running("hostB")},
			want: cluster.VM{Name: "vm1", Node: "hostB", MemoryMiB: 112, VCPUs: 1, Power: cluster.PowerRunning, Migratable: true}},
		{name: "user-paused-is-suspended", insts: []domainInstance{userPaused},
			want: cluster.VM{Name: "vm1", Node: "hostA", MemoryMiB: 112, VCPUs: 1, Power: cluster.PowerSuspended, Migratable: true}},
		{name: "pinned", insts: []domainInstance{func() domainInstance { i := running("hostA"); i.name = "pinned-vm"; return i }()},
			want: cluster.VM{Name: "pinned-vm", Node: "hostA", MemoryMiB: 112, VCPUs: 1, Power: cluster.PowerRunning, NotMigratableReason: "listed in pinned_vms"}},
	}
	d := &Driver{cfg: Config{PinnedVMs: []string{"pinned-vm"}}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := d.mergeDomains(tt.insts)
			if len(got) != 1 || !reflect.DeepEqual(got[0], tt.want) {
				t.Fatalf("got %+v\nwant [%+v]", got, tt.want)
			}
		})
	}
}
