# consort build, test and benchmark entry points. `make help` lists them.

GO            ?= go
VERSION       ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS       := -X main.version=$(VERSION)
# Whole-suite deadline for `go test` (per package binary).
TEST_TIMEOUT  ?= 8m
# Fuzzing per target: a fixed number of inputs in `make test` (a count,
# not a time, so a slow input at the end cannot fail the run with
# "context deadline exceeded"), longer in `make fuzz`.
FUZZTIME      ?= 3000x
LONG_FUZZTIME ?= 2m
# Minimising a new input may not run past -fuzztime: with Go's default
# (60 s) a short run can end mid-minimisation and report "context deadline
# exceeded" though nothing failed.
FUZZMINTIME   ?= 1s
# Extra flags for `bin/consort dev`, e.g. DEV_FLAGS='--http-port 8501'.
DEV_FLAGS     ?=

.PHONY: help build dev test vet race fuzz-brief fuzz fuzz-run bench clean

help:
	@echo 'make build   build every binary into bin/'
	@echo 'make dev     build, then run a one-node cluster (bin/consort dev; Ctrl-C stops)'
	@echo 'make test    go vet, go test -race, brief fuzzing of every fuzz target'
	@echo 'make fuzz    fuzz every target for $(LONG_FUZZTIME)'
	@echo 'make bench   benchmarks'
	@echo 'make clean   remove bin/ (dev state in data/ is kept)'

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/ ./cmd/...

dev: build
	bin/consort dev $(DEV_FLAGS)

test: vet race fuzz-brief

vet:
	$(GO) vet ./...

race:
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) ./...

fuzz-brief:
	@$(MAKE) --no-print-directory fuzz-run FUZZTIME=$(FUZZTIME)

fuzz:
	@$(MAKE) --no-print-directory fuzz-run FUZZTIME=$(LONG_FUZZTIME)

# Runs every FuzzXxx of every package for FUZZTIME each; Go fuzzes one
# target of one package per invocation. Packages are found by grepping test
# files, so only those with fuzz targets are compiled for -list.
fuzz-run:
	@set -e; \
	dirs=$$(grep -rl --include='*_test.go' -E '^func Fuzz[A-Z0-9_]' . 2>/dev/null \
		| grep -v '/testdata/' | xargs -r -n1 dirname | sort -u); \
	if [ -z "$$dirs" ]; then echo 'fuzz: no fuzz targets'; exit 0; fi; \
	for d in $$dirs; do \
		for f in $$($(GO) test -list '^Fuzz' "$$d" | grep '^Fuzz'); do \
			echo "fuzz: $$d $$f for $(FUZZTIME)"; \
			$(GO) test -run='^$$' -fuzz="^$$f\$$" -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) "$$d"; \
		done; \
	done

# Micro-benchmarks of every package, then the end-to-end comparison with
# etcd (Debian's etcd-server, installed here when missing and root):
# three consort servers and three etcd members on loopback, same run;
# then the catalog register rate and the health/service blocking-query
# fan-out (1,000 watchers, one change) on three consort servers.
# CONSORT_BENCH_SECONDS sets each load step's length (default 5).
bench:
	@command -v etcd >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && \
		{ apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends etcd-server etcd-client; } || \
		echo 'bench: etcd missing (apt-get install etcd-server); the comparison will be skipped'; }
	$(GO) test -run='^$$' -bench=. -benchmem $$($(GO) list ./... | grep -v /pkg/testcluster)
	$(GO) test -run='^$$' -bench='KVAgainstEtcd|CatalogRegister|HealthFanout' -benchtime=1x -timeout 20m -v ./pkg/testcluster/

clean:
	rm -rf bin/
