# Luminate: build, run and test. `make help` lists the targets.

GO           ?= go
# The stdmethods check wants Seek(int64, int); Prometheus' iterator
# interfaces, which our storage implements, have Seek(int64) ValueType.
VET_FLAGS    := -stdmethods=false
BIN          := bin/luminate
DATA_DIR     ?= ./data
DEV_SECRET   := $(DATA_DIR)/dev-hmac.secret
DEV_TOKEN    := $(DATA_DIR)/dev.token
TEST_TIMEOUT ?= 20m
BENCH        ?= .
BENCHTIME    ?= 1s
FUZZTIME     ?= 1m

# Build information, shown by `luminate version` and luminate_build_info.
VERSION_PKG := github.com/prometheus/common/version
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION    ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
BRANCH      ?= $(shell git rev-parse --abbrev-ref HEAD 2>/dev/null || echo unknown)
BUILD_USER  ?= $(shell id -un 2>/dev/null || echo unknown)@$(shell hostname 2>/dev/null || echo unknown)
BUILD_DATE  ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS     := -X $(VERSION_PKG).Version=$(VERSION) -X $(VERSION_PKG).Revision=$(REVISION) \
               -X $(VERSION_PKG).Branch=$(BRANCH) -X $(VERSION_PKG).BuildUser=$(BUILD_USER) \
               -X $(VERSION_PKG).BuildDate=$(BUILD_DATE)

.PHONY: help build run test bench bench-compare bench-vm lint fuzz docs clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-6s %s\n", $$1, $$2}'

build: ## build bin/luminate with version information
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/luminate

run: ## build, then serve on 127.0.0.1:9201 with embedded Badger under ./data and a development token secret (ARGS=--http.listen-address=:9201 listens on every interface)
	@echo "building $(BIN) (the first build takes about a minute)..."
	@$(MAKE) --no-print-directory build
	@mkdir -p $(DATA_DIR)
	@echo "Luminate is starting on 127.0.0.1:9201 with data in $(DATA_DIR) (make run ARGS=--http.listen-address=:9201 to listen on every interface)."
	@echo "Mint a token for tenant 'dev' (in another terminal) with:"
	@echo "  ./$(BIN) token --auth.jwt.hmac-secret-file=$(DEV_SECRET) --tenant=dev --scopes=metrics:read,metrics:write > $(DEV_TOKEN)"
	./$(BIN) serve --storage.badger.path=$(DATA_DIR) --http.listen-address=127.0.0.1:9201 \
		--auth.jwt.hmac-secret-file=$(DEV_SECRET) --auth.jwt.create-dev-secret $(ARGS)

# Fuzz targets of the untrusted-input decoders that `make test` runs for
# TEST_FUZZTIME each: the remote-write decoders (1.0 and 2.0) and our snappy
# decoder for large bodies, token verification, and the bounded PromQL parse.
TEST_FUZZ     := ./remotewrite:FuzzDecode ./remotewrite:FuzzDecodeV2 ./remotewrite:FuzzDecodeSnappy \
                 ./tenancy:FuzzVerify ./promql:FuzzParseBounded
TEST_FUZZTIME ?= 1m

test: ## install missing test dependencies, gofmt and go vet (lint), every test, the modern ClickHouse (chDB) check, then the decoder and token fuzzers
	scripts/test-deps.sh
	$(MAKE) --no-print-directory lint
	LUMINATE_PROMETHEUS3="$$(scripts/prometheus3.sh)" LUMINATE_OTELCOL="$$(scripts/otelcol.sh)" $(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...
	CHDB_LIB_PATH="$$(scripts/chdb-lib.sh)" $(GO) test -tags chdb -count=1 -run '^TestModern' -v ./storage/clickhouse/
	@set -e; for t in $(TEST_FUZZ); do \
		echo "== fuzz $${t#*:} in $${t%%:*} for $(TEST_FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$${t#*:}\$$" -fuzztime $(TEST_FUZZTIME) $${t%%:*}; \
	done

bench: ## Go benchmarks (BENCH=regexp, BENCHTIME=1s), then luminate vs VictoriaMetrics, Prometheus 3.x and 2.42 (ingest, week-long queries, bytes per sample), dashboard queries, native histograms and OTLP (docs/benchmarks.md)
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchtime $(BENCHTIME) -benchmem -timeout $(TEST_TIMEOUT) ./...
	@$(MAKE) --no-print-directory bench-compare

# The same-run comparison alone (the end of make bench): every BENCH_*
# variable of docs/benchmarks.md passes through from the environment or
# the command line.
BENCH_ENV := BENCH_SERIES BENCH_REPEAT BENCH_QUERY_SERIES BENCH_QUERY_HOURS BENCH_INGEST BENCH_PPROF BENCH_FLAGS \
	BENCH_BACKEND BENCH_WORKERS BENCH_HISTOGRAM_SERIES BENCH_HISTOGRAM_ROUNDS BENCH_HISTOGRAM_PROTOCOLS BENCH_OTLP_SERIES BENCH_OTLP_ROUNDS \
	BENCH_SERVERS BENCH_CASES BENCH_LONG_SERIES BENCH_LONG_REPEAT BENCH_DISK_SERIES BENCH_DISK_HOURS
bench-compare: ## only the same-run comparison of make bench: luminate vs VictoriaMetrics, Prometheus 3.x and 2.42 (BENCH_* variables: docs/benchmarks.md)
	scripts/test-deps.sh
	LUMINATE_PROMETHEUS3="$$(scripts/prometheus3.sh)" LUMINATE_VICTORIAMETRICS="$$(scripts/victoriametrics.sh)" LUMINATE_BENCH_COMPARE=1 \
		$(foreach v,$(BENCH_ENV),$(v)="$($(v))") \
		$(GO) test -count=1 -run '^TestBenchCompare$$' -v -timeout 180m ./cmd/luminate/

bench-vm: ## only issue 15's part of the comparison: ingest 4-way, week-long queries, bytes per sample (no dashboard, histogram or OTLP rows)
	@BENCH_QUERY_SERIES=0 BENCH_HISTOGRAM_SERIES=0 BENCH_OTLP_SERIES=0 $(MAKE) --no-print-directory bench-compare

lint: ## gofmt (must list nothing) and go vet
	@out="$$(gofmt -l $$(find . -name '*.go' -not -path './.git/*' -not -path './data/*'))"; \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	$(GO) vet $(VET_FLAGS) ./...

fuzz: ## run every Fuzz target in the repo for FUZZTIME each (default 1m)
	@set -e; for f in $$(grep -rl --include='*_test.go' '^func Fuzz' . | sort); do \
		dir=$$(dirname $$f); \
		for t in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$f); do \
			echo "== $$dir $$t"; \
			$(GO) test -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZTIME) $$dir; \
		done; \
	done

docs: ## regenerate docs/configuration.md from the flags
	$(GO) run ./cmd/luminate config-docs > docs/configuration.md.tmp
	mv docs/configuration.md.tmp docs/configuration.md

clean: ## remove build output (not the data directory)
	rm -rf bin
