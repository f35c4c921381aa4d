# Drover's build. `make demo` and `make test` are the two set-up commands a newcomer
# needs; everything they need comes from the Go module proxy.
GO          ?= go
BIN         := bin/drover
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.7.0
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS     := -X main.version=$(VERSION)
# Fuzz smoke: each target briefly; FUZZTIME=5m for a longer hunt. A count (FUZZTIME=5000x)
# has no wall-clock deadline: Go 1.26's fuzz coordinator can report a bare "context
# deadline exceeded" when a time budget ends mid-input (golang/go#75804), so CI counts.
FUZZTIME    ?= 10s

.PHONY: all build test race demo lint bench fuzz chaos e2e-libvirt lab-bench clean dashboard-shots e2e-proxmox e2e-hyperv e2e-vsphere e2e-ha

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/drover

## test: unit, engine, fault and crash tests (no root, no network beyond loopback)
test:
	$(GO) test -count=1 -timeout 30m ./...

## race: the same tests under the race detector (needs gcc for cgo; about 3 min)
race:
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 30m ./...

## demo: patch the embedded 4-node simulated cluster, node by node (its own state
## file, DEMO_STATE, never the user's default one)
DEMO_STATE  ?= bin/demo.db
demo: build
	@mkdir -p -m 700 $(dir $(DEMO_STATE))
	$(BIN) --config testdata/demo.yaml --state $(DEMO_STATE) apply --yes

lint:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

## bench: Go benchmarks of the hot paths, then the strategy suite (drover bench)
bench: build
	$(GO) test -run '^$$' -bench . -benchtime 3x -benchmem ./policies/ ./drivers/sim/ ./runs/ ./orchestrator/ ./orchestrator/bench/
	$(BIN) bench

# Every fuzz target, as package:Name. Add new ones here.
FUZZ_TARGETS := \
	./policies:FuzzNewWindow ./policies:FuzzParseHoursWindow \
	./drivers/sim:FuzzParseCluster ./drivers/sim:FuzzServer_Bodies \
	./drivers/libvirt:FuzzParseURI ./drivers/libvirt:FuzzParseDomainXML \
	./drivers/libvirt:FuzzDomainDisks ./drivers/libvirt:FuzzDirtyRate \
	./drivers/updaters:FuzzParseAptUpgradable \
	./cmd/drover/internal/server:FuzzDecodeStart \
	./cmd/drover/internal/config:FuzzLoad ./drivers/sim:FuzzDriver_Answers \
	./drivers/updaters:FuzzParseUpdateLines ./drivers/libvirt:FuzzJobStats \
	./cmd/drover/internal/dashboard:FuzzOpenCookie \
	./drivers/proxmox:FuzzParseUPID ./drivers/proxmox:FuzzParseProgress \
	./drivers/proxmox:FuzzParseVolume \
	./drivers/updaters:FuzzParseJobState \
	./runs:FuzzOpen_StateFileBytes ./runs/report:FuzzPrintable \
	./drivers/hyperv:FuzzParseEnvelope ./drivers/hyperv/scripts:FuzzParse \
	./drivers/hyperv/wsmantest:FuzzVerifyAuthenticate \
	./drivers/vsphere:FuzzParseVIBID ./drivers/vsphere:FuzzConfigValidate \
	./drivers:FuzzParseURL

## fuzz: run each fuzz target for FUZZTIME (default 10s)
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do pkg=$${t%%:*}; name=$${t##*:}; \
		echo "fuzz $$pkg $$name ($(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 2s $$pkg; done

## chaos: kill -9 `drover apply` and `drover serve` at KILLS (200) random moments of
## simulated runs, each round against its own `drover sim serve`, resume each, and
## check nothing is lost. SEED=N replays (round r uses N+r); MODE=apply|serve|mixed.
KILLS ?= 200
SEED  ?= 0
MODE  ?= mixed
chaos: build
	$(GO) build -o bin/chaos ./cmd/drover-chaos
	bin/chaos -drover $(BIN) -kills $(KILLS) -seed $(SEED) -mode $(MODE)

## e2e-libvirt: a real three-host libvirt/QEMU lab in network namespaces (root, Debian 12):
## installs the lab's packages, then bin/drover patches the lab (~8-16 min on 2 cores)
e2e-libvirt: build
	./drivers/libvirt/lab/lab.sh deps
	DROVER_LIBVIRT_LAB=1 DROVER_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -timeout 30m -v -run '^TestLab' ./drivers/libvirt/

## lab-bench: the lab where scheduling matters (root, Debian 12): hostA's link shaped to
## 200 Mbit/s, four light guests and two dirtying 14 MiB/s, drained with serial, fixed-2,
## fixed-8 and drover (BENCH_RUNS runs each, default 2); one line per strategy
BENCH_RUNS ?= 2
lab-bench: build
	./drivers/libvirt/lab/lab.sh deps
	@mkdir -p bin; rc=0; DROVER_LIBVIRT_LAB=1 BENCH_RUNS=$(BENCH_RUNS) DROVER_BIN=$(CURDIR)/$(BIN) \
		$(GO) test -count=1 -timeout 40m -v -run '^TestBenchLabDrain$$' ./drivers/libvirt/ >bin/lab-bench.log 2>&1 || rc=$$?; \
		grep -E '^lab-bench:|run [0-9]+ |^(--- |FAIL|ok)' bin/lab-bench.log; echo "(full log: bin/lab-bench.log)"; exit $$rc

## dashboard-shots: screenshots (1440x900 PNG) of the web dashboard during a run of the
## demo cluster, in headless chromium, into SHOTS_DIR; prints one path per line (~1 min)
SHOTS_DIR ?= dashboard-shots
dashboard-shots:
	@mkdir -p $(SHOTS_DIR)
	@DROVER_SHOTS_DIR=$(abspath $(SHOTS_DIR)) $(GO) test -v -count=1 -timeout 10m -run '^TestDashboardShots$$' ./cmd/drover/internal/dashboard/ >$(SHOTS_DIR)/test.log 2>&1 || { cat $(SHOTS_DIR)/test.log; exit 1; }
	@for f in clusters run plan history; do test -s $(SHOTS_DIR)/$$f.png || { cat $(SHOTS_DIR)/test.log; echo "missing $(SHOTS_DIR)/$$f.png" >&2; exit 1; }; echo $(SHOTS_DIR)/$$f.png; done

## e2e-proxmox: bin/drover patches drover-pvesim's 3-node Proxmox VE model (its own
## process on 127.0.0.1, every request checked against PVE's API schema), killed with
## SIGKILL mid-migration and with Ceph noout set, then resumed (~2 min)
e2e-proxmox: build
	$(GO) build -o bin/drover-pvesim ./cmd/drover-pvesim
	DROVER_PROXMOX_E2E=1 DROVER_BIN=$(CURDIR)/$(BIN) DROVER_PVESIM_BIN=$(CURDIR)/bin/drover-pvesim \
		$(GO) test -count=1 -timeout 15m -v -run '^TestE2E' ./drivers/proxmox/

## e2e-hyperv: bin/drover patches a 3-node model Hyper-V cluster over WinRM (and SSH):
## apply, kill -9 mid-drain + runs resume; each node's endpoint in its own network
## namespace when run as root (hv-*), on loopback otherwise. Prints its figures.
e2e-hyperv: build
	DROVER_HYPERV_E2E=1 DROVER_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -timeout 15m -v -run '^TestE2E' ./drivers/hyperv/

## e2e-vsphere: the strict vCenter simulator as its own process on 127.0.0.1 (4 hosts,
## 16 VMs, relocations that take time); bin/drover patches it, then again with a kill -9
## of drover apply during relocations and runs resume (~1.5 min)
e2e-vsphere: build
	$(GO) build -o bin/drover-vcsim ./cmd/drover-vcsim
	DROVER_VSPHERE_E2E=1 DROVER_BIN=$(CURDIR)/$(BIN) DROVER_VCSIM_BIN=$(CURDIR)/bin/drover-vcsim $(GO) test -count=1 -timeout 15m -v -run '^TestE2E' ./drivers/vsphere/

## e2e-ha: drover serve highly available: 3 embedded etcd members, 3 replicas (ha:) and
## drover sim serve; a run started through the API; the leader killed with kill -9
## HA_KILLS times and frozen with SIGSTOP past its lease HA_FREEZES times, one etcd member
## stopped. Prints the counts and the takeover times (median, worst). (~4 min)
HA_KILLS ?= 20
HA_FREEZES ?= 3
HA_TIME_SCALE ?= 3
e2e-ha:
	DROVER_HA_E2E=1 DROVER_HA_KILLS=$(HA_KILLS) DROVER_HA_FREEZES=$(HA_FREEZES) DROVER_HA_TIME_SCALE=$(HA_TIME_SCALE) \
		$(GO) test -count=1 -timeout 25m -v -run '^TestServe_HA$$' ./cmd/drover/

clean:
	rm -rf bin
