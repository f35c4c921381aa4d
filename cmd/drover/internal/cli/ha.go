package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/droverhq/drover/cmd/drover/internal/config"
	"github.com/droverhq/drover/ha"
	"github.com/droverhq/drover/runs"
)

// haConnectTimeout bounds the first contact with etcd at start-up.
const haConnectTimeout = 5 * time.Second

// openEtcd connects to the etcd of the ha section and checks that it answers, so
// that a wrong endpoint, certificate or password stops the start with a message
// naming the key to fix (exit 2 for the config, 1 for an etcd that does not
// answer). The password is never part of a message.
func openEtcd(ctx context.Context, h *config.HA) (*clientv3.Client, error) {
	tlsCfg, err := etcdTLS(h.Etcd.TLS)
	if err != nil {
		return nil, usageErr(err)
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   h.Etcd.Endpoints,
		DialTimeout: haConnectTimeout,
		TLS:         tlsCfg,
		Username:    h.Etcd.Username,
		Password:    h.Etcd.Password,
		// etcd's client logs through zap: silence it, our messages say what matters.
		Logger: zap.NewNop(),
		// Not ctx: a SIGTERM ends ctx, and the client must outlive it to resign cleanly.
		Context: context.WithoutCancel(ctx),
	})
	if err != nil {
		return nil, classifyEtcdErr(h, err)
	}
	cctx, cancel := context.WithTimeout(ctx, haConnectTimeout)
	defer cancel()
	if _, err := cli.Get(cctx, strings.TrimRight(h.Etcd.Prefix, "/")+"/b/meta", clientv3.WithCountOnly()); err != nil {
		cli.Close()
		return nil, classifyEtcdErr(h, err)
	}
	return cli, nil
}

func classifyEtcdErr(h *config.HA, err error) error {
	eps := strings.Join(h.Etcd.Endpoints, ", ")
	switch {
	case errors.Is(err, rpctypes.ErrAuthFailed), errors.Is(err, rpctypes.ErrGRPCAuthFailed):
		return usageErr(fmt.Errorf("ha.etcd.username / ha.etcd.password_env: etcd at %s refused user %q with the password in $%s; set the right password in that variable", eps, h.Etcd.Username, h.Etcd.PasswordEnv))
	case errors.Is(err, rpctypes.ErrPermissionDenied), errors.Is(err, rpctypes.ErrGRPCPermissionDenied):
		return usageErr(fmt.Errorf("ha.etcd.username: etcd user %q may not read and write under %s; grant it a role with readwrite on that prefix", h.Etcd.Username, h.Etcd.Prefix))
	case errors.Is(err, rpctypes.ErrUserEmpty), errors.Is(err, rpctypes.ErrGRPCUserEmpty):
		return usageErr(fmt.Errorf("ha.etcd.username: etcd at %s has authentication on; set ha.etcd.username and ha.etcd.password_env", eps))
	}
	msg := err.Error()
	if strings.Contains(msg, "x509") || strings.Contains(msg, "tls:") || strings.Contains(msg, "certificate") {
		return usageErr(fmt.Errorf("ha.etcd.tls: TLS with etcd at %s failed (%v); check ca_file, cert_file and key_file against the etcd members' certificates", eps, err))
	}
	return failedErr(fmt.Errorf("ha.etcd.endpoints: etcd at %s does not answer (%v); check that the members run and that this host reaches them (and ha.etcd.tls for https endpoints)", eps, err))
}

func etcdTLS(t config.HATLS) (*tls.Config, error) {
	if t == (config.HATLS{}) {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("ha.etcd.tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ha.etcd.tls.ca_file: %s holds no PEM certificate; give the CA that signed the etcd members' certificates", t.CAFile)
		}
		cfg.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("ha.etcd.tls.cert_file / key_file: %v; give a PEM certificate and its private key", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// haAlive is the run lock's liveness check with ha: the leader owns every run of
// its clusters, since any older owner can no longer write (its writes are fenced);
// only this process counts as alive.
func haAlive(self runs.Owner) func(runs.Owner) runs.Liveness {
	return func(o runs.Owner) runs.Liveness {
		if o.PID == self.PID && o.Host == self.Host && o.StartTicks == self.StartTicks {
			return runs.Alive
		}
		return runs.Dead
	}
}

// openHAStore connects to etcd, opens the fenced run store and joins the election
// as this replica. stop resigns and closes everything. If the replica's lease is
// lost while it runs, the process exits at once (status 1): a deposed leader must
// not go on acting, not even to abort what it started; the new leader reconciles.
func openHAStore(ctx context.Context, h *config.HA, sc *config.Serve, ln net.Listener, log *slog.Logger) (*runs.Store, *ha.Elector, func(), error) {
	cli, err := openEtcd(ctx, h)
	if err != nil {
		return nil, nil, nil, err
	}
	store, err := runs.OpenEtcd(ctx, cli, h.Etcd.Prefix, runs.EtcdOptions{Fenced: true})
	if err != nil {
		cli.Close()
		return nil, nil, nil, failedErr(fmt.Errorf("ha.etcd.prefix: %w", err))
	}
	scheme := "http"
	if sc.TLS != nil {
		scheme = "https"
	}
	el, err := ha.Join(ctx, ha.Config{
		Client: cli, Prefix: h.Etcd.Prefix, Replica: h.Replica, API: scheme + "://" + ln.Addr().String(),
		TTL: h.LeaseTTL, Store: store, Logger: log,
	})
	if errors.Is(err, ha.ErrDuplicateReplica) {
		cli.Close()
		return nil, nil, nil, usageErr(fmt.Errorf("ha.replica: %w (%s); give every replica its own name", err, h.Replica))
	}
	if err != nil {
		cli.Close()
		return nil, nil, nil, failedErr(err)
	}
	log.Info("joined the replicas", "replica", h.Replica, "prefix", h.Etcd.Prefix, "lease_ttl", h.LeaseTTL.String())
	var stopping atomic.Bool
	go func() {
		<-el.Lost()
		if stopping.Load() {
			return
		}
		log.Error("ha: this replica lost its etcd lease and stops acting; exiting (restart it to rejoin as a follower)", "replica", h.Replica, "error", el.Err())
		fmt.Fprintf(os.Stderr, "drover serve: ha: replica %s lost its etcd lease (%v): it stops acting and exits; restart it to rejoin as a follower\n", h.Replica, el.Err())
		os.Exit(ExitFailed)
	}()
	stop := func() {
		stopping.Store(true)
		_ = el.Close()
		cli.Close()
	}
	return store, el, stop, nil
}
