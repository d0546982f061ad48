# skuwatch — see README.md. Everything here needs only Go.
GO        ?= go
CORE      := ./engine/... ./rules/... ./state/... ./sinks/... ./sources/...
BENCHTIME ?= 1s
BENCH     ?= .
DEMOFLAGS ?=

.PHONY: build test test-race test-rest bench demo lint fuzz clean postgres

build:
	$(GO) build -o bin/skuwatch ./cmd/skuwatch

## test: the whole suite: the core packages under the race detector, the rest plain.
## PostgreSQL (for the sink's tests) is started, or installed, first.
test: postgres test-race test-rest

## postgres: make sure the test PostgreSQL answers on 127.0.0.1:5432.
postgres:
	@scripts/ensure-postgres

test-race:
	$(GO) test -race -count=1 $(CORE)

test-rest:
	$(GO) test -count=1 ./cmd/... ./bench/...

## bench: Go benchmarks with custom metrics (events/s, ns/eval). BENCHTIME=100x for a quick run.
bench: postgres
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchmem -benchtime $(BENCHTIME) ./bench/...

## demo: generate a retail chain's stream, replay it through the engine, print precision/recall.
demo:
	$(GO) run ./cmd/skuwatch demo $(DEMOFLAGS)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

## fuzz: a short run of every fuzz target (FUZZTIME=30s for longer).
FUZZTIME ?= 10s
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzDecode -fuzztime $(FUZZTIME) ./sources/
	$(GO) test -run '^$$' -fuzz FuzzLoad -fuzztime $(FUZZTIME) ./rules/

clean:
	rm -rf bin
