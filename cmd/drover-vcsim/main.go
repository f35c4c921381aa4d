// Command drover-vcsim serves the strict vCenter simulator (drivers/vsphere/vcsimstrict)
// as a process of its own, for end-to-end tests of the real drover binary: `make
// e2e-vsphere` builds and starts it. It prints one line of JSON on stdout once it
// serves ({"url": ..., "username": ..., "stats": ...}) and runs until SIGINT/SIGTERM.
// The password is read from the environment variable named by -password-env.
//
// It is never linked into bin/drover.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/droverhq/drover/drivers/vsphere/vcsimstrict"
)

func main() {
	var o vcsimstrict.Options
	passEnv := flag.String("password-env", "DROVER_VSPHERE_PASSWORD", "environment variable holding the password the simulator accepts")
	flag.StringVar(&o.Listen, "listen", "127.0.0.1:0", "address to serve on (loopback only)")
	flag.IntVar(&o.Hosts, "hosts", 4, "hosts in the cluster")
	flag.IntVar(&o.VMs, "vms", 16, "VMs, spread evenly over the hosts")
	flag.DurationVar(&o.RelocateDuration, "relocate-duration", time.Second, "how long one relocation takes")
	flag.DurationVar(&o.RebootDuration, "reboot-duration", 2*time.Second, "how long a rebooting host is notResponding")
	flag.StringVar(&o.Username, "username", "drover@vsphere.local", "the login the simulator accepts")
	flag.BoolVar(&o.TLS, "tls", false, "serve https with a self-signed certificate")
	flag.StringVar(&o.Depot, "depot", "", "the depot URL the esxcli model answers for")
	flag.StringVar(&o.Profile, "profile", "", "the image profile the esxcli model answers for")
	flag.Parse()
	o.Password = os.Getenv(*passEnv)
	if o.Password == "" {
		fmt.Fprintf(os.Stderr, "drover-vcsim: set %s to the password the simulator should accept\n", *passEnv)
		os.Exit(2)
	}
	sim, err := vcsimstrict.Start(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "drover-vcsim:", err)
		os.Exit(1)
	}
	stats := *sim.URL
	stats.Path = "/strict/stats"
	_ = json.NewEncoder(os.Stdout).Encode(map[string]string{
		"url": sim.URL.String(), "username": sim.Options().Username, "stats": stats.String(),
		"depot": sim.Options().Depot, "profile": sim.Options().Profile, "target_build": sim.Options().TargetBuild,
	})
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	sim.Close()
}
