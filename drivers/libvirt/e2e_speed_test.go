package libvirt_test

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestLabSpeed measures (and only prints) how long draining one host of 4 guests takes
// on the lab: a plain serial `virsh migrate` loop, then `drover apply` of that host
// with one migration at a time, with its default policy (the limits and drain
// scheduler a user gets without configuring any), and with the fixed scheduler at 2
// migrations per node (Hyper-V's default). Drover's overhead per migration is its
// drain time beyond libvirt's own job time, and beyond the virsh loop. Run it alone
// with:
//
//	DROVER_LIBVIRT_LAB=1 go test -count=1 -v -run TestLabSpeed ./drivers/libvirt/
func TestLabSpeed(t *testing.T) {
	if os.Getenv("DROVER_LIBVIRT_LAB") != "1" {
		t.Skip("set DROVER_LIBVIRT_LAB=1 (as root, after lab/lab.sh deps) to run the libvirt lab tests")
	}
	bin := droverBinary(t)
	l := startLabForApply(t)
	waitGuests(t, l)

	// gather brings every guest back to hostA, two at a time.
	gather := func() {
		var wg sync.WaitGroup
		sem := make(chan struct{}, 2)
		for _, vm := range labVMs {
			wg.Go(func() {
				sem <- struct{}{}
				defer func() { <-sem }()
				if out, err := l.run("migrate", vm, "hostA"); err != nil {
					t.Errorf("gather %s on hostA: %v\n%s", vm, err, out)
				}
			})
		}
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
	}

	// The virsh loop: what an operator's script does, targets alternating.
	uri := map[string]string{}
	for _, h := range labHosts {
		uri[h] = l.must("uri", h)
	}
	ip := map[string]string{"hostB": "10.99.0.2", "hostC": "10.99.0.3"}
	var virshSerial, virshJobs time.Duration
	for i, vm := range labVMs {
		to := []string{"hostB", "hostC"}[i%2]
		start := time.Now()
		out, err := exec.Command("virsh", "-q", "-c", uri["hostA"], "migrate", "--live", "--p2p", "--persistent", "--undefinesource",
			vm, "qemu+tcp://"+ip[to]+"/system", "tcp://"+ip[to]).CombinedOutput()
		virshSerial += time.Since(start)
		if err != nil {
			t.Fatalf("virsh migrate %s: %v\n%s", vm, err, out)
		}
		virshJobs += completedJobTime(t, uri[to], vm)
	}
	gather()

	d := newDrover(t, bin)
	// --force: hostA is patched again in the second run (the first wrote its marker).
	serial := droverDrain(t, d, uri, "--max-parallel-migrations", "1", "--force")
	gather()
	par := droverDrain(t, d, uri, "--force")
	gather()
	fixed2 := droverDrain(t, d, uri, "--set", "policy.drain_scheduler=fixed", "--max-migrations-per-node", "2", "--force")

	n := time.Duration(len(labVMs))
	r := func(d time.Duration) string { return d.Round(10 * time.Millisecond).String() }
	ms := func(d time.Duration) string { return fmt.Sprintf("%+dms", d.Milliseconds()) }
	t.Logf("drain of hostA, 4 guests (112 MiB, TCG), to hostB/hostC:")
	t.Logf("  virsh migrate, serial loop:          %s (libvirt job time %s)", r(virshSerial), r(virshJobs))
	t.Logf("  drover apply, 1 migration at a time: drain %s (libvirt job time %s), whole run %s", r(serial.drain), r(serial.jobs), r(serial.wall))
	t.Logf("  drover apply, default policy:        drain %s (libvirt job time %s), whole run %s", r(par.drain), r(par.jobs), r(par.wall))
	t.Logf("  drover apply, fixed, 2 per node:     drain %s (libvirt job time %s), whole run %s", r(fixed2.drain), r(fixed2.jobs), r(fixed2.wall))
	t.Logf("  ratio virsh serial / drover: %.2f with the default policy, %.2f with fixed 2 per node",
		float64(virshSerial)/float64(par.drain), float64(virshSerial)/float64(fixed2.drain))
	t.Logf("  per migration beyond libvirt's job time: virsh %s; drover %s per migration, %s per migration of the whole drain",
		r((virshSerial-virshJobs)/n), r((serial.migrations-serial.jobs)/n), r((serial.drain-serial.jobs)/n))
	t.Logf("  drover's own overhead per migration, (serial drain - virsh loop) / 4: %s", ms((serial.drain-virshSerial)/n))
	fmt.Printf("FIGURES drain4 virsh_serial=%s drover_serial=%s drover_default=%s drover_fixed2=%s ratio_default=%.2f ratio_fixed2=%.2f virsh_beyond_job=%s drover_beyond_job=%s drover_minus_virsh_per_migration=%s\n",
		r(virshSerial), r(serial.drain), r(par.drain), r(fixed2.drain), float64(virshSerial)/float64(par.drain), float64(virshSerial)/float64(fixed2.drain),
		r((virshSerial-virshJobs)/n), r((serial.drain-serial.jobs)/n), ms((serial.drain-virshSerial)/n))
}

// drainFigures are one drover run's drain of hostA.
type drainFigures struct {
	drain      time.Duration // the node's draining phase, as drover journaled it
	migrations time.Duration // the sum of its migrations' times in the report
	jobs       time.Duration // the sum of libvirt's job times of those migrations
	wall       time.Duration // the whole `drover apply`
}

// droverDrain runs `drover apply` on hostA alone and reads its drain from the report,
// and libvirt's job times from the targets.
func droverDrain(t *testing.T, d *drover, uri map[string]string, args ...string) drainFigures {
	t.Helper()
	start := time.Now()
	p, code := d.run(append([]string{"apply", "--yes", "--json", "--nodes", "hostA"}, args...)...)
	f := drainFigures{wall: time.Since(start)}
	if code != 0 {
		t.Fatalf("drover apply: exit %d", code)
	}
	rep := p.report(t)
	if rep.State != "succeeded" || len(rep.Nodes) != 1 || len(rep.Nodes[0].Migrations) != len(labVMs) {
		t.Fatalf("report %+v: want hostA done with %d migrations", rep, len(labVMs))
	}
	for _, ph := range rep.Nodes[0].Phases {
		if ph.Name == "draining" {
			f.drain = time.Duration(ph.Seconds * float64(time.Second))
		}
	}
	for _, m := range rep.Nodes[0].Migrations {
		f.migrations += time.Duration(m.Seconds * float64(time.Second))
		f.jobs += completedJobTime(t, uri[m.To], m.VM)
	}
	return f
}

var elapsedRE = regexp.MustCompile(`Time elapsed:\s+([0-9]+)\s*ms`)

// completedJobTime reads libvirt's time of the finished incoming migration of vm.
func completedJobTime(t *testing.T, uri, vm string) time.Duration {
	t.Helper()
	out, err := exec.Command("virsh", "-q", "-c", uri, "domjobinfo", "--completed", vm).CombinedOutput()
	m := elapsedRE.FindStringSubmatch(string(out))
	if err != nil || m == nil {
		t.Fatalf("virsh domjobinfo --completed %s: %v\n%s", vm, err, strings.TrimSpace(string(out)))
	}
	v, _ := strconv.Atoi(m[1])
	return time.Duration(v) * time.Millisecond
}
