package libvirt

import (
	"errors"
	"strings"
	"testing"

	golibvirt "github.com/digitalocean/go-libvirt"

	"github.com/droverhq/drover/drivers"
)

func TestDirtyRateOf(t *testing.T) {
	status := func(s golibvirt.DomainDirtyRateStatus) golibvirt.TypedParam {
		return typedParam(golibvirt.DomainStatsDirtyrateCalcStatus, golibvirt.TypedParamInt, uint64(s))
	}
	rate := func(d golibvirt.TypedParameterType, v uint64) golibvirt.TypedParam {
		return typedParam(golibvirt.DomainStatsDirtyrateMegabytesPerSecond, d, v)
	}
	tests := []struct {
		name   string
		params []golibvirt.TypedParam
		want   float64
		ok     bool
	}{
		{name: "measured", params: []golibvirt.TypedParam{status(golibvirt.DomainDirtyrateMeasured), rate(golibvirt.TypedParamLlong, 42)}, want: 42, ok: true},
		// An idle guest dirties nothing: 0 is a measurement, not "unknown".
		{name: "measured-zero", params: []golibvirt.TypedParam{status(golibvirt.DomainDirtyrateMeasured), rate(golibvirt.TypedParamLlong, 0)}, want: 0, ok: true},
		{name: "unsigned-rate", params: []golibvirt.TypedParam{rate(golibvirt.TypedParamUllong, 7), status(golibvirt.DomainDirtyrateMeasured)}, want: 7, ok: true},
		{name: "still-measuring", params: []golibvirt.TypedParam{status(golibvirt.DomainDirtyrateMeasuring), rate(golibvirt.TypedParamLlong, 42)}},
		{name: "never-started", params: []golibvirt.TypedParam{status(golibvirt.DomainDirtyrateUnstarted)}},
		{name: "no-fields", params: nil},
		{name: "no-rate", params: []golibvirt.TypedParam{status(golibvirt.DomainDirtyrateMeasured)}},
		{name: "negative-rate", params: []golibvirt.TypedParam{status(golibvirt.DomainDirtyrateMeasured), rate(golibvirt.TypedParamLlong, uint64(1<<64-5))}},
		{name: "absurd-rate", params: []golibvirt.TypedParam{status(golibvirt.DomainDirtyrateMeasured), rate(golibvirt.TypedParamUllong, 1<<40)}},
		{name: "rate-as-string", params: []golibvirt.TypedParam{status(golibvirt.DomainDirtyrateMeasured), rate(golibvirt.TypedParamString, 12)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := dirtyRateOf(tt.params)
			if got != tt.want || ok != tt.ok {
				t.Errorf("dirtyRateOf = %v, %v; want %v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

// FuzzDirtyRate: whatever a daemon sends, a rate is a finished measurement between
// 0 and maxDirtyMiBs, or none.
func FuzzDirtyRate(f *testing.F) {
	f.Add([]byte{0, 1, 2, 0, 0, 0, 1, 3, 42, 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		var params []golibvirt.TypedParam
		fields := []string{golibvirt.DomainStatsDirtyrateCalcStatus, golibvirt.DomainStatsDirtyrateMegabytesPerSecond, golibvirt.DomainStatsDirtyrateCalcPeriod}
		for len(data) >= 3 {
			var buf [8]byte
			n := copy(buf[:], data[2:min(len(data), 10)])
			v := uint64(0)
			for i := range n {
				v |= uint64(buf[i]) << (8 * i)
			}
			params = append(params, typedParam(fields[int(data[0])%len(fields)], golibvirt.TypedParameterType(1+int(data[1])%7), v))
			data = data[2+n:]
		}
		rate, ok := dirtyRateOf(params)
		if !ok && rate != 0 {
			t.Fatalf("no measurement but rate %v", rate)
		}
		if ok && (rate < 0 || rate > maxDirtyMiBs) {
			t.Fatalf("rate %v out of range", rate)
		}
		if ok {
			st, _ := paramInt(params, golibvirt.DomainStatsDirtyrateCalcStatus)
			if golibvirt.DomainDirtyRateStatus(st) != golibvirt.DomainDirtyrateMeasured {
				t.Fatalf("rate %v from status %d", rate, st)
			}
		}
	})
}

func TestConfig_ValidateSchedulerInputs(t *testing.T) {
	host := func(extra map[string]any) map[string]any {
		h := map[string]any{"name": "a", "uri": "qemu+tcp://10.0.0.1/system"}
		for k, v := range extra {
			h[k] = v
		}
		return h
	}
	tests := []struct {
		name      string
		raw       map[string]any
		wantField string
	}{
		{name: "nic-mbps", raw: map[string]any{"hosts": []any{host(map[string]any{"nic_mbps": 10000})}}},
		{name: "negative-nic-mbps", raw: map[string]any{"hosts": []any{host(map[string]any{"nic_mbps": -1})}}, wantField: "hosts[0].nic_mbps"},
		{name: "huge-nic-mbps", raw: map[string]any{"hosts": []any{host(map[string]any{"nic_mbps": 1e9})}}, wantField: "hosts[0].nic_mbps"},
		{name: "dirty-rate-seconds-zero", raw: map[string]any{"hosts": []any{host(nil)}, "dirty_rate_seconds": 0}, wantField: "dirty_rate_seconds"},
		{name: "dirty-rate-seconds-long", raw: map[string]any{"hosts": []any{host(nil)}, "dirty_rate_seconds": 61}, wantField: "dirty_rate_seconds"},
		{name: "dirty-rate-off-ignores-seconds", raw: map[string]any{"hosts": []any{host(nil)}, "dirty_rate": false, "dirty_rate_seconds": 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewConfig()
			if err := drivers.Decode(tt.raw, c); err != nil {
				t.Fatalf("Decode: %v", err)
			}
			err := c.Validate()
			var fe *drivers.FieldError
			switch {
			case tt.wantField == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.wantField != "" && (!errors.As(err, &fe) || fe.Field != tt.wantField || fe.Fix == ""):
				t.Fatalf("error %v, want one on %s with a fix", err, tt.wantField)
			case tt.wantField != "" && !strings.Contains(err.Error(), tt.wantField):
				t.Fatalf("error %q does not name %s", err, tt.wantField)
			}
		})
	}
}
