package libvirt

import (
	"math"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"

	"github.com/droverhq/drover/drivers"
)

// This file decodes libvirt's job statistics, typed parameters a daemon sends as it
// likes: a counter may come as any integer type, twice, or not at all. Values no real
// job has (negative, or beyond int64) count as absent, so that progress, downtime
// and the timings estimates learn from are never negative.

// jobProgress fills p from the statistics of a job of type typ and reports whether
// the job is active (p is left as it was when it is not).
func jobProgress(typ int32, params []golibvirt.TypedParam, p *drivers.MigrationProgress) bool {
	switch golibvirt.DomainJobType(typ) {
	case golibvirt.DomainJobBounded, golibvirt.DomainJobUnbounded:
	default:
		return false
	}
	processed, _ := paramCount(params, golibvirt.DomainJobDataProcessed)
	remaining, _ := paramCount(params, golibvirt.DomainJobDataRemaining)
	iter, _ := paramCount(params, golibvirt.DomainJobMemoryIteration)
	p.TransferredMiB = float64(processed) / (1 << 20)
	p.RemainingMiB = float64(remaining) / (1 << 20)
	p.Round = int(min(iter, math.MaxInt32))
	// Everything sent counts disks too; should a daemon leave the disk copy out of
	// data_processed, the total still covers it.
	p.DiskMiB = diskMiB(params)
	p.TransferredMiB = max(p.TransferredMiB, p.DiskMiB)
	if p.TransferredMiB > 0 {
		p.Phase = "precopy"
	}
	return true
}

// completedJob decodes the statistics of a completed migration: the job's own
// time (0 when unknown), its downtime and the data it moved. ok is false when typ
// is not a completed job.
func completedJob(typ int32, params []golibvirt.TypedParam) (job, downtime time.Duration, transferredMiB float64, ok bool) {
	if golibvirt.DomainJobType(typ) != golibvirt.DomainJobCompleted {
		return 0, 0, 0, false
	}
	job, _ = paramMillis(params, golibvirt.DomainJobTimeElapsed)
	downtime, _ = paramMillis(params, golibvirt.DomainJobDowntime)
	if b, ok := paramCount(params, golibvirt.DomainJobDataProcessed); ok {
		transferredMiB = float64(b) / (1 << 20)
	}
	return job, downtime, transferredMiB, true
}

// diskMiB is what the job copied of the VM's disks (storage migration), in MiB.
func diskMiB(params []golibvirt.TypedParam) float64 {
	b, _ := paramCount(params, golibvirt.DomainJobDiskProcessed)
	return float64(b) / (1 << 20)
}

// paramCount reads a counter: an integer parameter that is not negative.
func paramCount(params []golibvirt.TypedParam, field string) (int64, bool) {
	v, ok := paramInt(params, field)
	if !ok || v < 0 {
		return 0, false
	}
	return v, true
}

// paramMillis reads a duration in milliseconds that fits a time.Duration.
func paramMillis(params []golibvirt.TypedParam, field string) (time.Duration, bool) {
	ms, ok := paramCount(params, field)
	if !ok || ms > math.MaxInt64/int64(time.Millisecond) {
		return 0, false
	}
	return time.Duration(ms) * time.Millisecond, true
}
