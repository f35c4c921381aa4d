package libvirt

import (
	"encoding/binary"
	"math"
	"testing"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"

	"github.com/droverhq/drover/drivers"
)

// jobFields are the fields the decoders read, plus one they do not.
var jobFields = []string{
	golibvirt.DomainJobDataProcessed, golibvirt.DomainJobDataRemaining, golibvirt.DomainJobMemoryIteration,
	golibvirt.DomainJobTimeElapsed, golibvirt.DomainJobDowntime, golibvirt.DomainJobOperationStr, "disk_total",
	golibvirt.DomainJobDiskProcessed,
}

// typedParam is what go-libvirt decodes a typed parameter of type d into.
func typedParam(field string, d golibvirt.TypedParameterType, bits uint64) golibvirt.TypedParam {
	var v any
	switch d {
	case golibvirt.TypedParamInt, golibvirt.TypedParamBoolean:
		v = int32(bits)
	case golibvirt.TypedParamUint:
		v = uint32(bits)
	case golibvirt.TypedParamLlong:
		v = int64(bits)
	case golibvirt.TypedParamUllong:
		v = bits
	case golibvirt.TypedParamDouble:
		v = math.Float64frombits(bits)
	default:
		d, v = golibvirt.TypedParamString, string(binary.LittleEndian.AppendUint64(nil, bits))
	}
	return golibvirt.TypedParam{Field: field, Value: golibvirt.TypedParamValue{D: uint32(d), I: v}}
}

// fuzzParams turns bytes into typed parameters, 10 bytes each: field, type, value.
func fuzzParams(data []byte) []golibvirt.TypedParam {
	var out []golibvirt.TypedParam
	for len(data) >= 2 {
		field := jobFields[int(data[0])%len(jobFields)]
		d := golibvirt.TypedParameterType(1 + int(data[1])%7)
		var buf [8]byte
		n := copy(buf[:], data[2:])
		data = data[2+n:]
		out = append(out, typedParam(field, d, binary.LittleEndian.Uint64(buf[:])))
	}
	return out
}

func TestJobProgress(t *testing.T) {
	const mib = 1 << 20
	ullong := func(f string, v uint64) golibvirt.TypedParam { return typedParam(f, golibvirt.TypedParamUllong, v) }
	tests := []struct {
		name       string
		typ        golibvirt.DomainJobType
		params     []golibvirt.TypedParam
		wantActive bool
		want       drivers.MigrationProgress
	}{
		{name: "no-job", typ: golibvirt.DomainJobNone, params: []golibvirt.TypedParam{ullong(golibvirt.DomainJobDataProcessed, mib)},
			want: drivers.MigrationProgress{Phase: "setup"}},
		{name: "setup", typ: golibvirt.DomainJobUnbounded, wantActive: true, want: drivers.MigrationProgress{Phase: "setup"}},
		{name: "precopy", typ: golibvirt.DomainJobUnbounded, wantActive: true, params: []golibvirt.TypedParam{
			ullong(golibvirt.DomainJobDataProcessed, 3*mib), ullong(golibvirt.DomainJobDataRemaining, mib), ullong(golibvirt.DomainJobMemoryIteration, 2),
		}, want: drivers.MigrationProgress{Phase: "precopy", TransferredMiB: 3, RemainingMiB: 1, Round: 2}},
		{name: "counters-of-other-integer-types", typ: golibvirt.DomainJobBounded, wantActive: true, params: []golibvirt.TypedParam{
			typedParam(golibvirt.DomainJobDataProcessed, golibvirt.TypedParamUint, 2*mib), typedParam(golibvirt.DomainJobMemoryIteration, golibvirt.TypedParamInt, 5),
		}, want: drivers.MigrationProgress{Phase: "precopy", TransferredMiB: 2, Round: 5}},
		{name: "beyond-int64-is-absent", typ: golibvirt.DomainJobUnbounded, wantActive: true, params: []golibvirt.TypedParam{
			ullong(golibvirt.DomainJobDataProcessed, math.MaxUint64), ullong(golibvirt.DomainJobDataRemaining, 1<<63),
		}, want: drivers.MigrationProgress{Phase: "setup"}},
		{name: "negative-is-absent", typ: golibvirt.DomainJobUnbounded, wantActive: true, params: []golibvirt.TypedParam{
			typedParam(golibvirt.DomainJobDataRemaining, golibvirt.TypedParamLlong, uint64(1<<64-mib)), typedParam(golibvirt.DomainJobMemoryIteration, golibvirt.TypedParamInt, math.MaxUint32),
		}, want: drivers.MigrationProgress{Phase: "setup"}},
		{name: "storage-copy", typ: golibvirt.DomainJobUnbounded, wantActive: true, params: []golibvirt.TypedParam{
			ullong(golibvirt.DomainJobDataProcessed, 10*mib), ullong(golibvirt.DomainJobDiskProcessed, 8*mib),
		}, want: drivers.MigrationProgress{Phase: "precopy", TransferredMiB: 10, DiskMiB: 8}},
		{name: "disk-copy-outside-data-counts-in-the-total", typ: golibvirt.DomainJobUnbounded, wantActive: true, params: []golibvirt.TypedParam{
			ullong(golibvirt.DomainJobDiskProcessed, 5*mib),
		}, want: drivers.MigrationProgress{Phase: "precopy", TransferredMiB: 5, DiskMiB: 5}},
		{name: "string-counter-ignored", typ: golibvirt.DomainJobUnbounded, wantActive: true, params: []golibvirt.TypedParam{
			typedParam(golibvirt.DomainJobDataProcessed, golibvirt.TypedParamString, 42),
		}, want: drivers.MigrationProgress{Phase: "setup"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := drivers.MigrationProgress{Phase: "setup"}
			active := jobProgress(int32(tt.typ), tt.params, &p)
			if active != tt.wantActive || p != tt.want {
				t.Errorf("jobProgress = %v, %+v; want %v, %+v", active, p, tt.wantActive, tt.want)
			}
		})
	}
}

func TestCompletedJob(t *testing.T) {
	ullong := func(f string, v uint64) golibvirt.TypedParam { return typedParam(f, golibvirt.TypedParamUllong, v) }
	tests := []struct {
		name              string
		typ               golibvirt.DomainJobType
		params            []golibvirt.TypedParam
		wantJob, wantDown time.Duration
		wantMiB           float64
		wantOK            bool
	}{
		{name: "completed", typ: golibvirt.DomainJobCompleted, wantOK: true, wantJob: 1500 * time.Millisecond, wantDown: 40 * time.Millisecond, wantMiB: 512,
			params: []golibvirt.TypedParam{ullong(golibvirt.DomainJobTimeElapsed, 1500), ullong(golibvirt.DomainJobDowntime, 40), ullong(golibvirt.DomainJobDataProcessed, 512<<20)}},
		{name: "not-completed", typ: golibvirt.DomainJobFailed, params: []golibvirt.TypedParam{ullong(golibvirt.DomainJobTimeElapsed, 1500)}},
		// A time that overflows time.Duration would come out negative, and teach
		// the estimates a negative migration time.
		{name: "millis-beyond-duration", typ: golibvirt.DomainJobCompleted, wantOK: true,
			params: []golibvirt.TypedParam{ullong(golibvirt.DomainJobTimeElapsed, math.MaxInt64/1000), ullong(golibvirt.DomainJobDowntime, math.MaxUint64)}},
		{name: "negative-millis", typ: golibvirt.DomainJobCompleted, wantOK: true,
			params: []golibvirt.TypedParam{typedParam(golibvirt.DomainJobDowntime, golibvirt.TypedParamLlong, uint64(1<<64-5))}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			job, down, mib, ok := completedJob(int32(tt.typ), tt.params)
			if job != tt.wantJob || down != tt.wantDown || mib != tt.wantMiB || ok != tt.wantOK {
				t.Errorf("completedJob = %v, %v, %v, %v; want %v, %v, %v, %v", job, down, mib, ok, tt.wantJob, tt.wantDown, tt.wantMiB, tt.wantOK)
			}
		})
	}
}

// FuzzJobStats feeds the job statistics decoders whatever a daemon could send:
// any job type, any fields of any type, repeated or missing. Progress, downtime and
// job times must come out finite and never negative, and an inactive job must leave
// the progress alone.
func FuzzJobStats(f *testing.F) {
	f.Add(int32(golibvirt.DomainJobUnbounded), []byte{0, 3, 0, 0, 16, 0, 0, 0, 0, 0, 1, 3, 0, 0, 1})
	f.Add(int32(golibvirt.DomainJobCompleted), []byte{3, 3, 0xdc, 5, 0, 0, 0, 0, 0, 0, 4, 2, 40})
	f.Add(int32(golibvirt.DomainJobCompleted), []byte{3, 3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f})
	f.Add(int32(golibvirt.DomainJobBounded), []byte{0, 2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Add(int32(-1), []byte{})
	f.Fuzz(func(t *testing.T, typ int32, data []byte) {
		params := fuzzParams(data)
		before := drivers.MigrationProgress{VM: "v", Phase: "setup", Elapsed: time.Second}
		p := before
		active := jobProgress(typ, params, &p)
		jt := golibvirt.DomainJobType(typ)
		if wantActive := jt == golibvirt.DomainJobBounded || jt == golibvirt.DomainJobUnbounded; active != wantActive {
			t.Fatalf("job type %d: active = %v", typ, active)
		}
		if !active && p != before {
			t.Fatalf("inactive job changed the progress: %+v", p)
		}
		if p.DiskMiB > p.TransferredMiB {
			t.Fatalf("progress %+v: more disk than everything sent", p)
		}
		for _, v := range []float64{p.TransferredMiB, p.RemainingMiB, p.DiskMiB} {
			if v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
				t.Fatalf("progress %+v from %+v", p, params)
			}
		}
		if p.Round < 0 || (p.Phase != "setup" && p.Phase != "precopy") || p.VM != "v" || p.Elapsed != time.Second {
			t.Fatalf("progress %+v from %+v", p, params)
		}
		job, down, mib, ok := completedJob(typ, params)
		if ok != (jt == golibvirt.DomainJobCompleted) {
			t.Fatalf("job type %d: completed = %v", typ, ok)
		}
		if job < 0 || down < 0 || mib < 0 || math.IsNaN(mib) || math.IsInf(mib, 0) || (!ok && (job != 0 || down != 0 || mib != 0)) {
			t.Fatalf("completed job %v, downtime %v, %v MiB from %+v", job, down, mib, params)
		}
	})
}
