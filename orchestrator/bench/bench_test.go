package bench

import (
	"context"
	"testing"
)

// BenchmarkRun plays each scenario's whole rolling run under Drover's scheduler on
// the model (virtual time): the wall cost of `drover bench`'s rows.
func BenchmarkRun(b *testing.B) {
	drover := Strategies()[len(Strategies())-1]
	for _, sc := range Scenarios(DefaultSeed) {
		b.Run(sc.Name, func(b *testing.B) {
			var out Outcome
			for b.Loop() {
				var err error
				if out, err = Run(sc, drover); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(out.RunSeconds, "model-s/run")
			b.ReportMetric(float64(out.Migrations), "migrations/run")
		})
	}
}

// BenchmarkPlanScale is inventory -> plan of 1,000 nodes / 30,000 VMs through the
// embedded simulator's driver, as `drover plan` and `drover apply` do it.
func BenchmarkPlanScale(b *testing.B) {
	var f ScaleFigures
	for b.Loop() {
		var err error
		if f, err = PlanScale(context.Background(), 1000, 30); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(f.PlanSeconds, "plan-s")
	b.ReportMetric(float64(f.AllocatedBytes)/(1<<20), "plan-alloc-MiB")
	b.ReportMetric(float64(f.LiveHeapBytes)/(1<<20), "live-heap-MiB")
	b.ReportMetric(float64(f.Migrations), "migrations")
}
