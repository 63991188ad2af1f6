# Fornax: `make help` lists the targets.

SHELL       := /bin/bash
# A recipe line fails at its first failing command, wherever it is in a
# pipeline, and at an unset variable.
.SHELLFLAGS := -eu -o pipefail -c
GO          ?= go
TAMAGO_TOOL := github.com/usbarmory/tamago/cmd/tamago
# `go tool -n` prints the path of the tamago command (building it if
# needed); it must run without GOOS=tamago, which the stock go rejects.
TAMAGO      = $(shell $(GO) tool -n $(TAMAGO_TOOL))
TAMAGO_ENV  := GOOS=tamago GOOSPKG=github.com/usbarmory/tamago GOARCH=amd64
VERSION     := $(shell git describe --always --dirty 2>/dev/null || echo dev)
# Memory layout of board/qemu_amd64 (see its layout.go): text at 4 MB + 64 KB;
# the entry point sizes the runtime's memory from QEMU's -m (entry_amd64.s).
LDFLAGS     := -T 0x00410000 -R 0x1000 -E fornax/board/qemu_amd64.entry -X main.version=$(VERSION)
BUILDFLAGS  := -trimpath -tags linkramstart
QEMU        ?= qemu-system-x86_64
ACCEL       ?= tcg
APPEND      ?= name=fornax-01
KERNEL      := build/fornax.elf
KERNEL_CL   := build/fornax-cluster.elf
# The kernels' paths, as the VM tests and benchmarks (internal/vmtest) read them.
VMENV       := FORNAX_KERNEL=$(CURDIR)/$(KERNEL) FORNAX_KERNEL_CLUSTER=$(CURDIR)/$(KERNEL_CL)
GOFMT       = $(shell $(GO) env GOROOT)/bin/gofmt

.PHONY: check vet-tamago chaos bench bench-net bench-net-soak bench-sim bench-vms bench-memberlist help kernel kernel-cluster fornaxd lab qemu run stop test test-host deps tamago check-qemu clean

help: ## list the targets, then the benchmarks' knobs
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 18
	@echo; echo "knobs of the benchmarks (make bench-net BENCH_APPEND=offload=off):"
	@sed -n 's/^#- /  /p' $(MAKEFILE_LIST)

# The kernels build with one file of Go's standard library replaced, so
# that a 32 MiB buffer only FIPS mode uses is not in the image
# (scripts/drbg-overlay says why). Its directory starts with _ so that
# ./... leaves the copied file out (it imports a std internal package).
OVERLAY      = $$(scripts/drbg-overlay "$$($(TAMAGO_ENV) $(TAMAGO) env GOROOT)" build/_overlay)

kernel: tamago ## build build/fornax.elf (no cluster code)
	@mkdir -p build
	$(TAMAGO_ENV) $(TAMAGO) build $(BUILDFLAGS) -overlay $(OVERLAY) -ldflags "$(LDFLAGS)" -o $(KERNEL) ./kernel

kernel-cluster: tamago ## build build/fornax-cluster.elf (-tags cluster)
	@mkdir -p build
	$(TAMAGO_ENV) $(TAMAGO) build $(BUILDFLAGS),cluster -overlay $(OVERLAY) -ldflags "$(LDFLAGS)" -o $(KERNEL_CL) ./kernel

fornaxd: ## build build/fornaxd, a cluster node as a Linux daemon (docs/guide.md, fornaxd)
	@mkdir -p build
	$(GO) build -trimpath -o build/fornaxd ./cmd/fornaxd

qemu: kernel check-qemu ## boot build/fornax.elf in one VM, console on this terminal (Ctrl-A X quits)
	args=$$(scripts/qemu-args --accel $(ACCEL) -- $(KERNEL) "$(APPEND)"); mapfile -t args <<< "$$args"; \
		$(QEMU) "$${args[@]}"

run: kernel-cluster check-qemu ## the main job: boot two VMs on a virtual network
	scripts/run-two-qemu.sh -k $(KERNEL_CL) --accel $(ACCEL)

stop: ## tear down VMs left by `scripts/run-two-qemu.sh --detach`
	scripts/run-two-qemu.sh --stop

#- LINK          lab: how the hosts are joined, l2 (a veth link; the default) or vxlan (an overlay, MTU 1450)
LINK        ?= l2
lab: kernel-cluster check-qemu ## one segment over two host namespaces, 2 VMs each (docs/guide.md "Across hosts"); Ctrl-C stops it
	scripts/run-lab.sh -k $(KERNEL_CL) --accel $(ACCEL) --link $(LINK)

# Host packages first, then the VM tests alone: TCG guests share the two
# cores with nothing else, so their timing checks measure the guests.
# HOST_PKGS sets the shell variable pkgs; as an assignment it fails, and
# stops the recipe, when `go list` fails (in a command's arguments it would not).
HOST_PKGS = pkgs=$$($(GO) list ./... | grep -v /internal/vmtest)

test: deps test-host ## every test: `make check`, host tests (-race), and VM tests when the TamaGo compiler is here
	@if $(MAKE) --no-print-directory tamago >/dev/null 2>&1; then \
		$(MAKE) --no-print-directory vet-tamago kernel kernel-cluster && \
		$(VMENV) $(GO) test -count=1 -timeout 30m -v ./internal/vmtest/ ; \
	else \
		echo "################################################################"; \
		echo "### SKIPPING VM TESTS: the TamaGo compiler is missing ($$($(MAKE) --no-print-directory tamago 2>&1 | tail -1))"; \
		echo "################################################################"; \
		$(GO) test -count=1 ./internal/vmtest/ ; \
	fi

# -unsafeptr=false: register windows are fixed physical addresses, made
# into pointers from integers on purpose.
vet-tamago: tamago ## go vet the GOOS=tamago code (board, kernel, drivers)
	$(TAMAGO_ENV) $(TAMAGO) vet -unsafeptr=false $(BUILDFLAGS),cluster ./board/... ./kernel/... ./fs/... ./drivers/...

test-host: check ## `make check`, then the host tests with -race (no QEMU; -race needs cgo: gcc)
	$(HOST_PKGS); $(GO) test -race -count=1 $$pkgs
	cd bench && $(GO) test -race -count=1 ./...

# The TamaGo half of vet runs only when the compiler is already installed
# (cmd/tamago's path for a tagged tamago version): installing it takes minutes.
check: ## fast checks: gofmt, go vet (host, and GOOS=tamago when its compiler is here), go mod tidy
	@echo "gofmt -l ."; files=$$($(GOFMT) -l .); \
	if [ -n "$$files" ]; then \
		echo "fornax: these files are not gofmt-clean:"; echo "$$files" | sed 's/^/  /'; \
		echo "run: gofmt -w" $$files; exit 1; \
	fi
	$(GO) vet ./...
	@echo "$(GO) mod tidy -diff"; $(GO) mod tidy -diff || \
		{ echo "fornax: go.mod/go.sum are not tidy (diff above): run: $(GO) mod tidy"; exit 1; }
	@# bench/ is a module of its own, so that memberlist stays out of fornax's.
	cd bench && $(GO) vet ./...
	@echo "cd bench && $(GO) mod tidy -diff"; cd bench && $(GO) mod tidy -diff || \
		{ echo "fornax: bench/go.mod/go.sum are not tidy (diff above): run: cd bench && $(GO) mod tidy"; exit 1; }
	@v=$$($(GO) list -m -f '{{.Version}}' github.com/usbarmory/tamago); \
	if [ -x "$${XDG_CACHE_HOME:-$$HOME/.cache}/tamago-go/tamago-go$${v#v}/bin/go" ]; then \
		$(MAKE) --no-print-directory vet-tamago; \
	else \
		echo "### check: SKIPPING vet-tamago: no TamaGo compiler in ~/.cache/tamago-go (\`make tamago\` installs it)"; \
	fi

# The one list of apt packages (.ci/run uses this target): command:packages.
deps: ## install QEMU, network tools, git, gcc (for -race), prometheus and chromium (face tests), avahi and nss-mdns (mDNS tests), diod (Linux's 9P server, beside Fornax's in TestLinux9PRead), nftables (make chaos) with apt-get (Debian, as root), if missing
	@missing=""; \
	for c in qemu-system-x86_64:qemu-system-x86 ip:iproute2 socat:socat ping:iputils-ping nc:netcat-openbsd \
		git:git gcc:gcc,libc6-dev promtool:prometheus chromium:chromium avahi-daemon:avahi-daemon,avahi-utils,libnss-mdns diod:diod nft:nftables; do \
		p=$${c#*:}; command -v $${c%%:*} >/dev/null 2>&1 || missing="$$missing $${p//,/ }"; \
	done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "installing:$$missing"; \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null || \
			{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; }; \
		else \
			echo "fornax: missing$$missing: install them (Debian: sudo apt-get install$$missing)"; exit 1; \
		fi; \
	fi

tamago: ## make sure `go tool tamago` has its compiler (it installs tamago-go into ~/.cache/tamago-go)
	@out=$$($(GO) tool $(TAMAGO_TOOL) version 2>&1) || { \
		echo "fornax: the TamaGo compiler is missing: 'go tool tamago' could not install tamago-go into ~/.cache/tamago-go (it needs git and access to github.com/usbarmory/tamago-go): $$(echo "$$out" | tail -n1)"; exit 1; }

check-qemu:
	@command -v $(QEMU) >/dev/null || { echo "fornax: $(QEMU) is missing: run 'make deps' as root (Debian package qemu-system-x86)"; exit 1; }

clean: ## remove build outputs
	rm -rf build run

# The benchmarks' knobs, which `make help` lists (the "#-" lines).
#- BENCH_APPEND  bench-net: kernel command-line words (offload=off: no offloads; offload=csum,mrg: some)
#- SOAK          bench-net-soak: how long TCP runs into discard (default 10m)
#- SIM_ARGS      bench-sim: -sim.n=, -sim.lossfor=, -sim.loss= of the simulated LAN (docs/scale.md)
#- VMS, VMS_MEM  bench-vms: how many VMs (default 64), and -m of each (default 64M)
#- CHAOS_PROFILES chaos: the profiles to run, in turn (default fast,default)
#- BENCH_ARGS    bench-memberlist: its flags, e.g. BENCH_ARGS='-n 16,64' (go run ./vsmemberlist -h)
BENCH_APPEND ?=
SOAK         ?= 10m
SIM_ARGS     ?=
VMS          ?= 64
VMS_MEM      ?= 64M
BENCH_ARGS   ?=
CHAOS_PROFILES ?= fast,default

bench: kernel kernel-cluster check-qemu ## measure boot time, TCP throughput, idle CPU, discovery time, round trips into a VM (ping, TCP echo, 9P) and their QEMU CPU
	$(VMENV) $(GO) test -run '^$$' -bench 'Boot|Discard|Idle|Discovery|RTT' -benchtime 3x -timeout 30m ./internal/vmtest/

bench-net: kernel check-qemu ## TCP receive and transmit, MB/s and QEMU CPU s/GB: Fornax beside the Debian guest (BENCH_APPEND)
	$(VMENV) FORNAX_APPEND="$(BENCH_APPEND)" \
		$(GO) test -run '^$$' -bench 'Netpath$$' -benchtime 1x -timeout 20m -v ./internal/vmtest/ | grep -v '^=== '

bench-net-soak: kernel check-qemu ## TCP into discard for SOAK (default 10m): the runtime's memory every 15 s must stay flat
	$(VMENV) FORNAX_SOAK=$(SOAK) \
		$(GO) test -run '^$$' -bench NetpathSoak -benchtime 1x -timeout 60m -v ./internal/vmtest/ | grep -v '^=== '

# The simulated LAN of docs/scale.md: 1000 real cluster.Nodes on a fake
# clock, both profiles.
bench-sim: ## 1000 simulated nodes: join storm, steady state, 10 % loss, partition, crashes (docs/scale.md; SIM_ARGS)
	$(GO) test -run '^$$' -bench 'Scale$$' -benchtime 1x -timeout 120m ./cluster/ -args $(SIM_ARGS)

# Not in CI: 64 VMs take the machine for about four minutes.
bench-vms: kernel-cluster check-qemu ## boot VMS=64 cluster VMs on one bridge, -m VMS_MEM=64M each: convergence, idle CPU, memory, 8 crashed and rebooted
	$(VMENV) FORNAX_BENCH_VMS=$(VMS) FORNAX_BENCH_VMS_MEM=$(VMS_MEM) \
		flock /tmp/fornax-vm.lock $(GO) test -run '^$$' -bench '^BenchmarkVMs$$' -benchtime 1x -timeout 20m ./internal/vmtest/

chaos: kernel-cluster check-qemu ## 16 keyed VMs under 10 % loss, a partition, its heal and 3 crashes, per profile (CHAOS_PROFILES; about 8 min; docs/bench.md)
	$(VMENV) FORNAX_CHAOS=1 FORNAX_CHAOS_PROFILES=$(CHAOS_PROFILES) \
		flock /tmp/fornax-vm.lock $(GO) test -count=1 -run '^TestChaos$$' -timeout 40m -v ./internal/vmtest/

# One process, inside a network namespace it makes and removes (root):
# memberlist, then Fornax's default and fast profiles, N at a time. The
# lock keeps VM runs and other benchmarks off the CPU meanwhile.
bench-memberlist: ## Fornax vs memberlist v0.7.0 at N=16, 64, 256, one table per N (root; about 25 min; BENCH_ARGS)
	@mkdir -p build
	cd bench && $(GO) build -o ../build/vsmemberlist ./vsmemberlist
	@echo "fornax $(VERSION), $$(date -u '+%Y-%m-%d %H:%M UTC'), $$(nproc) CPUs"
	flock /tmp/fornax-vm.lock build/vsmemberlist $(BENCH_ARGS)
