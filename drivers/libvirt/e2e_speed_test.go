package libvirt_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/droverhq/drover/drivers"
)

// labDrainFigures measures (and only prints) how long draining one host of 4 guests
// takes: a plain serial virsh loop, the driver serially, and the driver with 2
// migrations at a time; plus the driver's overhead per migration (wall time of Migrate
// beyond libvirt's own job time).
func labDrainFigures(t *testing.T, l *lab, drv drivers.Driver) {
	ctx := t.Context()
	vms := []string{"vm1", "vm2", "vm3", "vm4"}
	// Targets alternate, as a placement policy spreading the load would do.
	target := func(i int) string { return []string{"hostA", "hostC"}[i%2] }
	ip := map[string]string{"hostA": "10.99.0.1", "hostC": "10.99.0.3"}
	gather := func() {
		for _, vm := range vms {
			if _, err := drv.Migrate(ctx, drivers.MigrateRequest{VM: vm, To: "hostB"}, nil); err != nil {
				t.Fatalf("gather %s on hostB: %v", vm, err)
			}
		}
	}

	gather()
	start := time.Now()
	for i, vm := range vms {
		to := ip[target(i)]
		l.must("virsh", "hostB", "migrate", "--live", "--p2p", "--persistent", "--undefinesource", vm,
			"qemu+tcp://"+to+"/system", "tcp://"+to)
	}
	virshSerial := time.Since(start)

	type sample struct{ wall, job time.Duration }
	drain := func(parallel int) (time.Duration, []sample) {
		gather()
		var mu sync.Mutex
		var samples []sample
		sem := make(chan struct{}, parallel)
		var wg sync.WaitGroup
		start := time.Now()
		for i, vm := range vms {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				t0 := time.Now()
				res, err := drv.Migrate(ctx, drivers.MigrateRequest{VM: vm, From: "hostB", To: target(i)}, nil)
				if err != nil {
					t.Errorf("drain %s: %v", vm, err)
					return
				}
				mu.Lock()
				samples = append(samples, sample{wall: time.Since(t0), job: res.Duration})
				mu.Unlock()
			})
		}
		wg.Wait()
		return time.Since(start), samples
	}
	driverSerial, serialSamples := drain(1)
	driverPar2, _ := drain(2)

	var overhead time.Duration
	for _, s := range serialSamples {
		overhead += s.wall - s.job
	}
	if n := len(serialSamples); n > 0 {
		overhead /= time.Duration(n)
	}
	r := func(d time.Duration) string { return d.Round(10 * time.Millisecond).String() }
	t.Logf("drain of 4 guests (112 MiB, TCG) from hostB to hostA/hostC:")
	t.Logf("  virsh migrate serial loop: %s", r(virshSerial))
	t.Logf("  driver, 1 at a time:       %s", r(driverSerial))
	t.Logf("  driver, 2 at a time:       %s (ratio virsh-serial/driver-2 = %.2f)", r(driverPar2), float64(virshSerial)/float64(driverPar2))
	t.Logf("  driver overhead per migration (Migrate wall - libvirt job time, serial runs): %s", r(overhead))
	t.Logf("  driver vs virsh per migration (serial runs): %+dms", (driverSerial-virshSerial).Milliseconds()/int64(len(vms)))
	for i, s := range serialSamples {
		t.Logf("    migration %d: wall %s, job %s", i+1, r(s.wall), r(s.job))
	}
	fmt.Printf("FIGURES drain4 virsh_serial=%s driver_serial=%s driver_par2=%s ratio=%.2f overhead_vs_job=%s driver_minus_virsh_per_migration=%dms\n",
		r(virshSerial), r(driverSerial), r(driverPar2), float64(virshSerial)/float64(driverPar2), r(overhead),
		(driverSerial-virshSerial).Milliseconds()/int64(len(vms)))
}
