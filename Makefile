# consort build, test and benchmark entry points. `make help` lists them.

GO            ?= go
VERSION       ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS       := -X main.version=$(VERSION)
# Whole-suite deadline for `go test` (per package binary).
TEST_TIMEOUT  ?= 8m
# Fuzzing time per target: brief in `make test`, longer in `make fuzz`.
FUZZTIME      ?= 5s
LONG_FUZZTIME ?= 2m
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
	$(GO) test -race -timeout $(TEST_TIMEOUT) ./...

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
			$(GO) test -run='^$$' -fuzz="^$$f\$$" -fuzztime=$(FUZZTIME) "$$d"; \
		done; \
	done

# Placeholder: Go benchmarks only. The etcd and Consul comparisons of
# DESIGN.md "Performance targets" come later.
bench:
	$(GO) test -run='^$$' -bench=. -benchmem ./...

clean:
	rm -rf bin/
