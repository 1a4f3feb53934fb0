# Dux build, run and test targets. `make help` lists them.

GO        ?= go
BIN       := bin
DUXD      := $(BIN)/duxd
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION)
PROTOC_GEN_GO      := google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
PROTOC_GEN_GO_GRPC := google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.5.1

.DEFAULT_GOAL := help

.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-18s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## Build bin/duxd
	CGO_ENABLED=0 $(GO) build -ldflags "$(LDFLAGS)" -o $(DUXD) ./cmd/duxd

.PHONY: run
run: build ## Run a single-node dev agent (data in ~/.local/share/dux/dev)
	$(DUXD) agent --dev --name dev

.PHONY: cluster
cluster: build ## Run a 3-node cluster on 127.0.0.1 (data in ./dux-data/cluster)
	scripts/cluster.sh $(DUXD)

.PHONY: test
test: test-unit test-integration ## Everything CI runs: unit tests with -race, then integration tests

.PHONY: test-unit
test-unit: ## Unit tests with the race detector
	$(GO) test -race -count=1 ./...

.PHONY: test-integration
test-integration: ## Integration tests against real duxd processes (built with -race, but for load tests) and the web UI in Chromium
	DUX_CHROMIUM="$$(scripts/ensure-chromium.sh)" $(GO) test -count=1 -tags integration -timeout 20m ./integration/

.PHONY: chaos
chaos: ## Long randomised fault schedule on 5 containers: make chaos SEED=7 DURATION=10m
	DUX_REQUIRE_DOCKER=1 DUX_CHAOS_SEED=$(SEED) DUX_CHAOS_DURATION=$(or $(DURATION),5m) \
		$(GO) test -count=1 -tags integration -timeout 3h -run 'TestRobustness_Chaos' -v ./integration/

.PHONY: lint
lint: ## gofmt and go vet
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...
	$(GO) vet -tags integration ./integration/

.PHONY: proto
proto: ## Regenerate the gRPC code from proto/dux/v1/*.proto
	scripts/install-protoc.sh
	GOBIN=$(CURDIR)/$(BIN) $(GO) install $(PROTOC_GEN_GO)
	GOBIN=$(CURDIR)/$(BIN) $(GO) install $(PROTOC_GEN_GO_GRPC)
	PATH="$(CURDIR)/$(BIN):$$PATH" protoc -I proto \
		--go_out=. --go_opt=module=github.com/dux-io/dux \
		--go-grpc_out=. --go-grpc_opt=module=github.com/dux-io/dux \
		proto/dux/v1/*.proto

.PHONY: verify
verify: proto ## Check that the committed generated code is current
	git diff --exit-code -- proto/

.PHONY: bench
bench: ## Go benchmarks of the state machine
	$(GO) test -run '^$$' -bench . -benchmem ./fsm/ ./cluster/ ./rpc/

.PHONY: bench-cluster
bench-cluster: build ## duxd bench put/get against a fresh 3-node loopback cluster
	scripts/bench-cluster.sh $(DUXD)

.PHONY: clean
clean: ## Remove build output and local cluster data
	rm -rf $(BIN) dux-data
