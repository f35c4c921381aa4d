package libvirt

import (
	"math"

	golibvirt "github.com/digitalocean/go-libvirt"
)

// Dirty rates for the drain scheduler, from libvirt's dirty-rate calculation
// (virDomainStartDirtyRateCalc, libvirt >= 7.2, QEMU's calc-dirty-rate): an
// inventory reads the result of the calculation the previous one started, then
// starts the next. The first inventory of a domain knows no rate yet; one taken
// while the domain migrates keeps none (QEMU refuses to calculate then).

// maxDirtyMiBs bounds a believable dirty rate: no memory bus dirties more than this,
// and a daemon's answer above it is not a measurement.
const maxDirtyMiBs = 1 << 20

// dirtyRateOf decodes the dirty-rate statistics of one domain (the
// "dirtyrate.*" fields of virConnectGetAllDomainStats): the rate in MiB/s (libvirt's
// megabytes_per_second counts MiB) and whether a finished measurement gave it.
// Absent, unfinished, negative or absurd values are no measurement.
func dirtyRateOf(params []golibvirt.TypedParam) (float64, bool) {
	status, ok := paramInt(params, golibvirt.DomainStatsDirtyrateCalcStatus)
	if !ok || golibvirt.DomainDirtyRateStatus(status) != golibvirt.DomainDirtyrateMeasured {
		return 0, false
	}
	rate, ok := paramInt(params, golibvirt.DomainStatsDirtyrateMegabytesPerSecond)
	if !ok || rate < 0 || rate > maxDirtyMiBs {
		return 0, false
	}
	return float64(rate), true
}

// dirtyRates reads the last calculated dirty rate of each running domain in doms,
// by domain name, then starts the next calculation of seconds for each. Errors are
// not fatal: a daemon older than 7.2, a domain that migrates or stops meanwhile, a
// calculation still running: the rate is then unknown, as without this.
func dirtyRates(lv *golibvirt.Libvirt, doms []golibvirt.Domain, seconds int) map[string]float64 {
	if len(doms) == 0 {
		return nil
	}
	out := map[string]float64{}
	recs, err := lv.ConnectGetAllDomainStats(doms, uint32(golibvirt.DomainStatsDirtyrate), 0)
	if err == nil {
		for _, r := range recs {
			if v, ok := dirtyRateOf(r.Params); ok {
				out[r.Dom.Name] = v
			}
		}
	}
	secs := int32(min(max(seconds, 1), math.MaxInt32))
	for _, dom := range doms {
		_ = lv.DomainStartDirtyRateCalc(dom, secs, 0) // refused while one runs or the domain migrates
	}
	return out
}
