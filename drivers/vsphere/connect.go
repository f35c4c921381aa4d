package vsphere

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"reflect"
	"strings"
	"time"

	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/session"
	"github.com/vmware/govmomi/session/keepalive"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/droverhq/drover/drivers"
)

// section prefixes field names in errors of Open, which the config loader does not
// prefix (it does so for Validate).
const section = "cluster.vsphere."

func open(ctx context.Context, cfg Config, env drivers.Env) (*Driver, error) {
	log := env.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	u, err := cfg.parseURL()
	if err != nil {
		return nil, drivers.PrefixFields("cluster.vsphere", err)
	}
	if u.Scheme == "http" {
		log.Warn("vCenter is reached over plain http: acceptable for a simulator only, use https for a real vCenter", "url", u.String())
	}
	password := os.Getenv(cfg.PasswordEnv)
	if password == "" {
		return nil, drivers.Fieldf(section+"password_env", "export "+cfg.PasswordEnv+" with the vCenter password in drover's environment", "environment variable %s is empty or not set", cfg.PasswordEnv)
	}
	sc := soap.NewClient(u, cfg.Insecure)
	if cfg.CAFile != "" {
		if err := sc.SetRootCAs(cfg.CAFile); err != nil {
			return nil, drivers.Fieldf(section+"ca_file", "give a PEM file with the CA that signed vCenter's certificate", "%v", err)
		}
	}
	if cfg.Thumbprint != "" {
		sc.SetThumbprint(u.Host, strings.ToUpper(cfg.Thumbprint))
	}
	cctx, cancel := context.WithTimeout(ctx, cfg.CallTimeout)
	defer cancel()
	vc, err := vim25.NewClient(cctx, sc)
	if err != nil {
		return nil, connectError(cfg, err)
	}
	// vCenter ends idle sessions (30 minutes by default); a daemon holds the driver
	// open between runs. The keep-alive runs from Login until Logout (Close).
	vc.RoundTripper = keepalive.NewHandlerSOAP(vc.RoundTripper, 5*time.Minute, nil)
	sm := session.NewManager(vc)
	if err := sm.Login(cctx, url.UserPassword(cfg.Username, password)); err != nil {
		if isFault[*types.InvalidLogin](err) {
			return nil, drivers.Fieldf(section+"password_env", "check username and the password in "+cfg.PasswordEnv, "vCenter refused the login of %s", cfg.Username)
		}
		return nil, fmt.Errorf("log in to vCenter: %w: %v", drivers.ErrUnavailable, err)
	}
	finder := find.NewFinder(vc, false)
	dc, err := finder.Datacenter(cctx, cfg.Datacenter)
	if err != nil {
		defer func() { _ = sm.Logout(context.WithoutCancel(ctx)) }()
		var nf *find.NotFoundError
		if errors.As(err, &nf) {
			return nil, drivers.Fieldf(section+"datacenter", "use one of: "+names(cctx, finder.DatacenterList, "*"), "no datacenter %q in this vCenter", cfg.Datacenter)
		}
		return nil, fmt.Errorf("find datacenter: %w: %v", drivers.ErrUnavailable, err)
	}
	finder.SetDatacenter(dc)
	cl, err := finder.ClusterComputeResource(cctx, cfg.Cluster)
	if err != nil {
		defer func() { _ = sm.Logout(context.WithoutCancel(ctx)) }()
		var nf *find.NotFoundError
		if errors.As(err, &nf) {
			list := func(ctx context.Context, p string) ([]*object.ClusterComputeResource, error) {
				return finder.ClusterComputeResourceList(ctx, p)
			}
			return nil, drivers.Fieldf(section+"cluster", "use one of: "+names(cctx, list, "*"), "no cluster %q in datacenter %s", cfg.Cluster, cfg.Datacenter)
		}
		return nil, fmt.Errorf("find cluster: %w: %v", drivers.ErrUnavailable, err)
	}
	return newDriver(cfg, vc, sm, dc, cl, log), nil
}

// connectError names what to fix when vCenter cannot be reached.
func connectError(cfg Config, err error) error {
	if soap.IsCertificateUntrusted(err) || strings.Contains(err.Error(), "thumbprint") || strings.Contains(err.Error(), "tls:") {
		switch {
		case cfg.Thumbprint != "":
			return drivers.Fieldf(section+"thumbprint", "give the thumbprint of the certificate vCenter presents (openssl x509 -fingerprint)", "TLS check failed: %v", err)
		case cfg.CAFile != "":
			return drivers.Fieldf(section+"ca_file", "give the CA that signed vCenter's certificate", "TLS check failed: %v", err)
		}
		return drivers.Fieldf(section+"url", "set ca_file to vCenter's CA (or thumbprint; insecure: true only for a lab)", "TLS check failed: %v", err)
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("reach vCenter at %s (check cluster.vsphere.url and the network): %w: %v", cfg.URL, drivers.ErrUnavailable, err)
	}
	return fmt.Errorf("reach vCenter at %s (check cluster.vsphere.url: is it vCenter's /sdk endpoint?): %w: %v", cfg.URL, drivers.ErrUnavailable, err)
}

type named interface{ Name() string }

func names[T named](ctx context.Context, list func(context.Context, string) ([]T, error), p string) string {
	objs, err := list(ctx, p)
	if err != nil || len(objs) == 0 {
		return "(none found)"
	}
	out := make([]string, len(objs))
	for i, o := range objs {
		out[i] = o.Name()
	}
	return strings.Join(out, ", ")
}

// methodFault returns the vSphere fault inside err (a SOAP fault or a task's error).
func methodFault(err error) types.BaseMethodFault {
	if err == nil {
		return nil
	}
	switch {
	case soap.IsSoapFault(err):
		return asFault(soap.ToSoapFault(err).VimFault())
	case soap.IsVimFault(err):
		return soap.ToVimFault(err)
	}
	var te interface{ Fault() types.BaseMethodFault }
	if errors.As(err, &te) {
		return te.Fault()
	}
	return nil
}

func isFault[T types.BaseMethodFault](err error) bool {
	_, ok := methodFault(err).(T)
	return ok
}

// asFault turns a decoded fault into a types.BaseMethodFault: the SOAP decoder gives
// some faults as values, whose methods are on the pointer.
func asFault(v any) types.BaseMethodFault {
	if f, ok := v.(types.BaseMethodFault); ok {
		return f
	}
	if rv := reflect.ValueOf(v); rv.IsValid() && rv.Kind() == reflect.Struct {
		p := reflect.New(rv.Type())
		p.Elem().Set(rv)
		if f, ok := p.Interface().(types.BaseMethodFault); ok {
			return f
		}
	}
	return nil
}
