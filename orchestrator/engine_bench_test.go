package orchestrator_test

import (
	"bufio"
	"context"
	"flag"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/droverhq/drover/drivers/sim"
	"github.com/droverhq/drover/orchestrator"
	"github.com/droverhq/drover/orchestrator/bench"
	"github.com/droverhq/drover/runs"
	"github.com/droverhq/drover/runs/report"
)

// BenchmarkEngine_Run runs a whole rolling run on the embedded simulator
// (time-scaled) at three sizes, about 100, 3,000 and 30,000 migrations, and reports,
// per successful migration, the CPU time of the process (engine and in-process
// simulator together: an upper bound of the engine's), what the state store says it
// wrote (runs.Store.Stats), its commits, and what the process really wrote (Linux
// /proc/self/io wchar: every byte handed to write calls). Pick a size with
// -bench 'BenchmarkEngine_Run/migrations-3000'.
func BenchmarkEngine_Run(b *testing.B) {
	for _, size := range []struct {
		name              string
		nodes, vmsPerNode int
		// timeScale is the sim's speed-up: a large cluster's inventory takes long
		// enough to read that a faster clock would time out its reboots.
		timeScale float64
	}{
		{"migrations-100", 8, 13, 2000},
		{"migrations-3000", 30, 100, 2000},
		{"migrations-30000", 300, 100, 50},
	} {
		b.Run(size.name, func(b *testing.B) {
			if size.nodes >= 300 && !benchAskedFor(size.name) {
				// Over half an hour on two cores: only when named, so that
				// `make bench` (-bench .) stays short.
				b.Skipf("run it by name: -bench 'BenchmarkEngine_Run/%s$'", size.name)
			}
			benchEngineRun(b, size.nodes, size.vmsPerNode, size.timeScale)
		})
	}
}

// benchAskedFor reports whether the -bench pattern names this size.
func benchAskedFor(name string) bool {
	f := flag.Lookup("test.bench")
	return f != nil && strings.Contains(f.Value.String(), name)
}

func benchEngineRun(b *testing.B, nodes, vmsPerNode int, timeScale float64) {
	c := bench.ScaleCluster(bench.DefaultSeed, nodes, vmsPerNode)
	var migrations int
	var cpu time.Duration
	var storeBytes, wchar int64
	var commits int
	for b.Loop() {
		b.StopTimer()
		ctx := context.Background()
		drv, err := sim.NewEmbedded(ctx, sim.EmbeddedOptions{Cluster: c, TimeScale: timeScale})
		if err != nil {
			b.Fatal(err)
		}
		st, err := runs.Open(filepath.Join(b.TempDir(), "state.db"), runs.Options{})
		if err != nil {
			b.Fatal(err)
		}
		owner := runs.Owner{PID: os.Getpid(), Host: "bench"}
		eng, err := orchestrator.New(orchestrator.Config{Cluster: "bench", Driver: drv, Updater: drv, Store: st,
			Logger: slog.New(slog.DiscardHandler), Owner: owner,
			Alive: func(o runs.Owner) runs.Liveness {
				if o == owner {
					return runs.Alive
				}
				return runs.Dead
			}})
		if err != nil {
			b.Fatal(err)
		}
		p := orchestrator.DefaultPolicy()
		p.PollInterval = orchestrator.Duration(2 * time.Second)
		prep, err := eng.Prepare(ctx, p)
		if err != nil {
			b.Fatal(err)
		}
		_, bytes0 := st.Stats()
		w0, cpu0 := procWchar(b), processCPU()
		b.StartTimer()
		id, err := eng.Start(ctx, prep)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := eng.Execute(ctx, id); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		cpu += processCPU() - cpu0
		wchar += procWchar(b) - w0
		_, bytes1 := st.Stats()
		storeBytes += bytes1 - bytes0
		commits += st.Commits()
		r, _ := st.Run(id)
		nodes, _ := st.Nodes(id)
		rep := report.Build(r, nodes)
		migrations += rep.Summary.Migrations
		st.Close()
		drv.Close()
		b.StartTimer()
	}
	if migrations == 0 {
		b.Fatal("no migration")
	}
	m := float64(migrations)
	b.ReportMetric(float64(migrations)/float64(b.N), "migrations/run")
	b.ReportMetric(float64(cpu.Microseconds())/m, "cpu-µs/migration")
	b.ReportMetric(float64(storeBytes)/m, "store-stats-B/migration")
	b.ReportMetric(float64(commits)/m, "commits/migration")
	if wchar > 0 {
		b.ReportMetric(float64(wchar)/m, "written-B/migration")
	}
}

// processCPU is the user and system CPU time of the process so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procWchar is the bytes the process handed to write calls (Linux), 0 elsewhere.
func procWchar(b *testing.B) int64 {
	f, err := os.Open("/proc/self/io")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "wchar: "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				b.Fatalf("parse /proc/self/io: %v", err)
			}
			return n
		}
	}
	return 0
}
