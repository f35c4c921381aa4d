//go:build !linux

package wsmantest

import (
	"errors"
	"net"
)

// Netns needs Linux network namespaces; elsewhere the lab runs on loopback.
type Netns struct{}

// NewNetns fails outside Linux.
func NewNetns([]string) (*Netns, error) {
	return nil, errors.New("network namespaces need Linux")
}

func (*Netns) IP(string) net.IP                            { return nil }
func (*Netns) IPs() []net.IP                               { return nil }
func (*Netns) Listen(string, string) (net.Listener, error) { return nil, errors.New("no namespaces") }
func (*Netns) SetLink(string, bool) error                  { return errors.New("no namespaces") }
func (*Netns) Close()                                      {}
