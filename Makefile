# haa: every target does its own set-up on a fresh machine (root + Go).
#   make demo            the agent's real job in a namespace lab
#   make test            everything CI runs (unit, namespace, keepalived interop, race detector)
#   make bench-failover  client-visible outage vs keepalived (writes out/bench-failover.md)
#   make bench-cpu       the VRRP data path's CPU and memory beside keepalived (writes out/bench-cpu.md)
#   make bench-fleet     32 gossiping agents (apply, catch-up, gossip), then 1,000 virtual servers to 8 directors
#   make bench-track     failing check -> VIP moved, vs keepalived (writes out/bench-track.md)
#   make bench-lvs       IPVS in the VM: haad vs keepalived on the same keepalived.conf, 1,000 and 10,000 virtual servers
#   make bench-lvs-nft   the nftables backend: 10,000 virtual servers programmed, one weight changed (writes out/bench-lvs.md)
#   make chaos           an adversarial run's attacks replayed in a lab, with verdicts (writes out/chaos.md)
#   make bench-vips      adding and removing 1,000..20,000 VIPs on one device
#   make test-ipvs       the IPVS tests in Debian's kernel under qemu (haalab vm), part of make test
#   make fuzz            every parser (adverts, config, fleet document, keepalived, gossip) under go test -fuzz, FUZZTIME each
#   make deb             the Debian package (out/haa_VERSION_ARCH.deb): binaries, systemd unit, completions

SHELL      := /bin/bash
GO         ?= go
TOOLS      := $(CURDIR)/.tools
BIN        := $(CURDIR)/bin
export PATH := $(TOOLS):$(PATH)
# go vet and the tests build everything; never let a stray GOFLAGS change that.
export GOFLAGS := -buildvcs=false

BUF_VERSION          := v1.75.0
PROTOC_GEN_GO        := v1.36.12
PROTOC_GEN_GO_GRPC   := v1.6.2
GRPCURL_VERSION      := v1.9.4
FUZZTIME             ?= 60s
TEST_TIMEOUT         ?= 20m

.PHONY: all build test test-race test-ipvs vm-deps test-unit deps tools apt-deps lint proto proto-check docs demo bench-failover bench-cpu bench-api bench-fleet bench-fleet-scale bench-track bench-lvs bench-lvs-nft bench-vips chaos fuzz clean

all: build

## build: static, as the package and the container ship them (CGO_ENABLED=0:
## no libc mapped, no pthread stacks), so the benchmarks measure what users run.
build:
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/ ./cmd/haad ./cmd/haactl ./deploy/lab/cmd/haalab

## deps: Debian packages the tests use as real peers and tools.
apt-deps:
	@need=""; \
	for p in keepalived:/usr/sbin/keepalived frr:/usr/lib/frr/vrrpd iproute2:/usr/sbin/ip tcpdump:/usr/bin/tcpdump curl:/usr/bin/curl; do \
	  [ -x "$${p#*:}" ] || need="$$need $${p%%:*}"; \
	done; \
	if [ -n "$$need" ]; then \
	  echo "installing:$$need"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$need) >/dev/null || \
	    { echo "apt-get install$$need failed: install them by hand" >&2; exit 1; }; \
	fi
	@# keepalived's and frr's packages start a system instance on some hosts; the tests run their own.
	@-systemctl stop keepalived 2>/dev/null || true
	@-systemctl stop frr 2>/dev/null || true

tools: $(TOOLS)/buf $(TOOLS)/protoc-gen-go $(TOOLS)/protoc-gen-go-grpc $(TOOLS)/grpcurl
$(TOOLS)/grpcurl:
	GOBIN=$(TOOLS) $(GO) install github.com/fullstorydev/grpcurl/cmd/grpcurl@$(GRPCURL_VERSION)
$(TOOLS)/buf:
	GOBIN=$(TOOLS) $(GO) install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)
$(TOOLS)/protoc-gen-go:
	GOBIN=$(TOOLS) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO)
$(TOOLS)/protoc-gen-go-grpc:
	GOBIN=$(TOOLS) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC)

deps: apt-deps tools

proto: tools
	buf generate

## docs: the configuration and API references (deploy/docs/config.md, api.md)
## from the proto comments; go test ./deploy/docs/... fails when they are stale.
docs: $(TOOLS)/buf
	$(GO) run ./deploy/docs/gen -buf $(TOOLS)/buf -out deploy/docs

## proto-check: lint, and generated code must match the .proto files.
proto-check: tools
	buf lint
	@# The API must not break compatibility with what main ships.
	@if git rev-parse --verify -q main >/dev/null; then \
	  buf breaking --against '.git#branch=main' && echo "no breaking change against main"; \
	else echo "no main branch here: breaking-change check skipped"; fi
	@tmp=$$(mktemp -d); trap 'rm -rf $$tmp' EXIT; \
	buf generate -o $$tmp; \
	for f in $$(cd $$tmp && find . -name '*.go'); do \
	  cmp -s $$tmp/$$f $$f || { echo "generated code is stale: $$f (run make proto and commit)"; exit 1; }; \
	done; echo "generated code is fresh"

lint: proto-check
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  [ -z "$$out" ] || { echo "gofmt needed: $$out"; exit 1; }
	$(GO) vet ./...

## test: unit, namespace and interop tests, then the race detector over
## the agent, the API and the client library. Namespace tests skip without
## root; with HAA_REQUIRE_NETNS=1 (CI) they fail instead.
test: deps lint
	HAA_GRPCURL=$(TOOLS)/grpcurl $(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...
	$(MAKE) --no-print-directory test-race
	$(MAKE) --no-print-directory test-ipvs

## test-race: go test -race over every package of the agent (node/...), the
## API (server), the client library (ctl/...) and haactl.
RACE_PKGS := ./node/... ./server ./ctl/... ./cmd/haactl
test-race:
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) $(RACE_PKGS)

## test-ipvs: this machine's kernel has no IPVS; Debian's does. haalab vm
## boots it under qemu (TCG) with this machine's root read-only, and runs
## there the tests that need ip_vs (deploy/lab/vm/test-ipvs.sh), built here
## first. The kernel and initramfs are cached in .build/vm (the first run
## downloads the kernel package: about 70 MB). out/vm receives the VM's
## console and the tests' reports.
VM_DIR := .build/vm
test-ipvs: vm-deps build
	rm -rf out/vm && mkdir -p out/vm $(VM_DIR)/bin
	$(GO) test -c -o $(VM_DIR)/bin/ipvs.test ./node/lvs/ipvs
	$(GO) test -c -o $(VM_DIR)/bin/haad.test ./cmd/haad
	$(BIN)/haalab vm --dir $(VM_DIR) --share out/vm --timeout 30m \
	  --env HAA_REQUIRE_IPVS=1 --env HAA_REQUIRE_NETNS=1 --env HAA_BIN_DIR=$(BIN) \
	  --script deploy/lab/vm/test-ipvs.sh

## vm-deps: what haalab vm needs (qemu, a static busybox, depmod) and what
## the tests in it run (keepalived, ipvsadm).
vm-deps:
	@need=""; \
	for p in qemu-system-x86:/usr/bin/qemu-system-x86_64 busybox-static:/bin/busybox kmod:/usr/sbin/depmod \
	         ipvsadm:/usr/sbin/ipvsadm keepalived:/usr/sbin/keepalived; do \
	  [ -x "$${p#*:}" ] || need="$$need $${p%%:*}"; \
	done; \
	if [ -n "$$need" ]; then \
	  echo "installing:$$need"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$need) >/dev/null || \
	    { echo "apt-get install$$need failed: install them by hand" >&2; exit 1; }; \
	fi

test-unit:
	$(GO) test -count=1 -short ./...

demo: apt-deps build
	$(BIN)/haalab demo --haad $(BIN)/haad

bench-failover: apt-deps build
	mkdir -p out
	$(BIN)/haalab bench-failover --haad $(BIN)/haad --trials 10 --out out/bench-failover.md

bench-api: build
	mkdir -p out
	$(BIN)/haalab bench-api --haad $(BIN)/haad --transitions 1000 --out out/bench-api.md

bench-fleet: build
	mkdir -p out
	$(BIN)/haalab bench-fleet --haad $(BIN)/haad --haactl $(BIN)/haactl --nodes 32 --applies 10 --lb-vs 0 --out out/bench-fleet.md
	$(BIN)/haalab bench-fleet --haad $(BIN)/haad --haactl $(BIN)/haactl --nodes 8 --applies 5 --returns 2 --lb-directors 8 --lb-applies 5 --out out/bench-fleet-lb.md

## bench-fleet-scale: the fleet apply at 64 agents, then at 128 (target
## <= 2 s). On this 2-vCPU machine 128 is not met: see the README.
bench-fleet-scale: build
	mkdir -p out
	$(BIN)/haalab bench-fleet --haad $(BIN)/haad --haactl $(BIN)/haactl --nodes 64 --applies 10 --returns 3 --lb-vs 0 --out out/bench-fleet-64.md
	$(BIN)/haalab bench-fleet --haad $(BIN)/haad --haactl $(BIN)/haactl --nodes 128 --applies 10 --returns 3 --lb-vs 0 --out out/bench-fleet-128.md

bench-track: apt-deps build
	mkdir -p out
	$(BIN)/haalab bench-track --haad $(BIN)/haad --trials 10 --out out/bench-track.md

## bench-cpu: the VRRP data path in steady state, haad beside keepalived
## 2.2.7 (two nodes, the backup receiving every advert): 50 instances at
## 10 ms (the headline table), 1 at 10 ms and 500 at 100 ms (CPU per
## advert), 3 rounds each, alternating which goes first.
bench-cpu: apt-deps build
	mkdir -p out
	$(BIN)/haalab bench-cpu --haad $(BIN)/haad --scales 50@10ms,1@10ms,500@100ms --rounds 3 --out out/bench-cpu.md

## bench-lvs: IPVS in the VM (haalab vm): haad and keepalived 2.2.7 programming
## the same keepalived.conf of 1,000 and 10,000 virtual servers x 5 real
## servers (out/bench-lvs-keepalived.md), then the IPVS backend alone and
## through haad's API (out/bench-lvs-ipvs.md). bench-lvs-nft: the nftables
## backend on this machine's kernel (out/bench-lvs.md).
bench-lvs: vm-deps build
	rm -rf out/vm-bench && mkdir -p out/vm-bench
	$(BIN)/haalab vm --dir $(VM_DIR) --share out/vm-bench --timeout 90m -- sh -c '\
	  $(BIN)/haalab bench-lvs-keepalived --haad $(BIN)/haad --sizes 1000,10000 --rounds 2 --out out/vm-bench/bench-lvs-keepalived.md && \
	  $(BIN)/haalab bench-lvs --haad $(BIN)/haad --services 10000 --dests 5 --backend ipvs --rounds 2 --out out/vm-bench/bench-lvs-ipvs.md'
	cp out/vm-bench/bench-lvs-keepalived.md out/vm-bench/bench-lvs-ipvs.md out/

bench-lvs-nft: build
	mkdir -p out
	$(BIN)/haalab bench-lvs --haad $(BIN)/haad --services 10000 --dests 5 --backend nftables --out out/bench-lvs.md

## bench-vips: adding and removing 1,000..20,000 VIPs on one device (root).
bench-vips:
	$(GO) test ./node/host -run '^$$' -bench VIPSet -benchtime 1x

chaos: build
	mkdir -p out
	$(BIN)/haalab chaos --haad $(BIN)/haad --out out/chaos.md

## fuzz: every fuzz target, one at a time (go test -fuzz runs one target
## per run), FUZZTIME each: the total is bounded by the list below. All run
## even when one fails; a failing input is kept in its package's
## testdata/fuzz/NAME/ and fails make. Minimizing a new input may take
## 10s, not the whole FUZZTIME (go's default is 60s). Go 1.26 can end a
## run that found nothing with "context deadline exceeded" as FUZZTIME
## runs out (go.dev/issue/75804): that alone is not a failure.
fuzz:
	@set -o pipefail; failed=""; log=$$(mktemp); trap 'rm -f $$log' EXIT; \
	for t in \
	  ./node/vrrp:FuzzParsePacket \
	  ./node/vip:FuzzParse \
	  ./node/internal/yamlout:FuzzStrings \
	  ./node/internal/yamlout:FuzzDocuments \
	  ./node/config:FuzzAgentConfig \
	  ./node/config:FuzzFleetDocument \
	  ./node/config:FuzzParseFleet \
	  ./node/keepalived:FuzzKeepalived \
	  ./node/keepalived:FuzzSplitCommand \
	  ./node/gossip:FuzzNotifyMsg \
	  ./node/gossip:FuzzMergeRemoteState \
	  ./node/gossip:FuzzSummaryMerge \
	  ./node/gossip:FuzzGossipMeta; do \
	  pkg=$${t%%:*} name=$${t#*:}; \
	  echo "== $$name ($$pkg, $(FUZZTIME))"; \
	  if ! $(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 10s $$pkg 2>&1 | tee $$log; then \
	    if tail -n 5 $$log | grep -q '^    context deadline exceeded$$' && ! grep -q 'Failing input written' $$log; then \
	      echo "fuzz: $$name: only go's end-of-run race (go.dev/issue/75804): not counted as a failure"; \
	    else failed="$$failed $$pkg:$$name"; fi; \
	  fi; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz: failed:$$failed (inputs kept under testdata/fuzz/)" >&2; exit 1; fi

## deb: the Debian package out/haa_VERSION_ARCH.deb (deploy/packaging/nfpm.yaml):
## both binaries, the systemd unit, the tmpfiles entry, the examples and
## haactl's completions. VERSION defaults to git describe (vX.Y.Z tags give
## X.Y.Z); DEB_BUILD and DEB_OUT move the staging and output directories.
.PHONY: deb
NFPM_VERSION   := v2.45.2
VERSION        ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
DEB_VERSION    ?= $(shell deploy/packaging/debversion.sh '$(VERSION)')
DEB_MAINTAINER ?= haa maintainers <maintainers@haa.invalid>
DEB_BUILD      ?= $(BIN)/deb
DEB_OUT        ?= $(CURDIR)/out
deb:
	rm -rf $(DEB_BUILD) && mkdir -p $(DEB_BUILD)/completions $(DEB_OUT)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w -X main.version=$(VERSION)' -o $(DEB_BUILD)/ ./cmd/haad ./cmd/haactl
	$(DEB_BUILD)/haactl completion bash > $(DEB_BUILD)/completions/haactl
	$(DEB_BUILD)/haactl completion zsh > $(DEB_BUILD)/completions/_haactl
	$(DEB_BUILD)/haactl completion fish > $(DEB_BUILD)/completions/haactl.fish
	HAA_VERSION='$(DEB_VERSION)' HAA_ARCH=$$($(GO) env GOARCH) HAA_BUILD='$(DEB_BUILD)' HAA_MAINTAINER='$(DEB_MAINTAINER)' \
	SOURCE_DATE_EPOCH=$$(git log -1 --format=%ct 2>/dev/null || date +%s) \
	  $(GO) run github.com/goreleaser/nfpm/v2/cmd/nfpm@$(NFPM_VERSION) pkg --packager deb \
	    --config deploy/packaging/nfpm.yaml --target $(DEB_OUT)/

clean:
	rm -rf $(BIN) out
