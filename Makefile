# entra-revoke — `make run` serves locally in dry-run mode; `make test` runs every test;
# `make release` builds what a release publishes (dist/: the deployment zip, the CLI for four
# platforms, SHA256SUMS), reproducibly.
GO       ?= go
PORT     ?= 8080
NODE_DIR := testdata/node
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT   ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS  := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
# A public, demo-only secret for `make run` (dry run): never use it for a real deployment.
DEMO_SECRET := whsec_ZGVtby1vbmx5LWRvLW5vdC11c2UtaW4tcHJvZHVjdGlvbg==

.PHONY: all build run test deps node-tools shellcheck vet lint unit fuzz bench package release release-check clean

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o handler .

run: build
	@echo "entra-revoke: dry run on http://localhost:$(PORT) with the demo secret (DRY_RUN=true)."
	@echo "Send a signed request from another terminal:"
	@echo "  echo '{\"upn\":\"alice@contoso.com\",\"ticket\":\"INC0012345\"}' | WEBHOOK_SECRETS=$(DEMO_SECRET) ./handler sign --curl http://localhost:$(PORT)/api/revoke | sh"
	WEBHOOK_SECRETS=$(DEMO_SECRET) DRY_RUN=true PORT=$(PORT) ./handler serve

# Everything: static checks, unit and integration tests with the race detector, end-to-end tests
# (the built binary against local fakes, Azurite and the npm standardwebhooks package), fuzz seeds.
test: deps vet lint
	$(GO) test -race -count=1 -timeout 30m ./...

deps: node-tools shellcheck
	$(GO) mod download

# npm test tooling (azurite, standardwebhooks, @kusto/language-service-next), reinstalled only when the lock file changes.
node-tools: $(NODE_DIR)/node_modules/.installed
$(NODE_DIR)/node_modules/.installed: $(NODE_DIR)/package-lock.json $(NODE_DIR)/package.json
	npm ci --prefix $(NODE_DIR) --no-audit --no-fund
	touch $@

# shellcheck checks the deployment scripts; CI machines are Debian and run as root.
shellcheck:
	@command -v shellcheck >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq shellcheck >/dev/null; \
	  else echo "install shellcheck (apt-get install shellcheck)"; exit 1; fi; }

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { gofmt -l .; echo "gofmt needed"; exit 1; }
	$(GO) vet ./...

lint:
	$(GO) run $(STATICCHECK) ./...

unit:
	$(GO) test -short ./...

# Each fuzz target briefly; crashers land in testdata/fuzz as regression seeds. Count-limited:
# duration-limited runs can fail spuriously on Go 1.26 (golang/go#75804); the JWT target signs
# with RSA, so keep counts modest.
FUZZTIME ?= 5000x
fuzz:
	@for p in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$p | grep '^Fuzz'); do \
	    echo "== $$p $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$p || exit 1; \
	  done; done

# Microbenchmarks, the load tool (cold start, throughput against a bare server, bulk drain) on the
# binary just built, and the 60 s soak. Results and targets: docs/BENCHMARKS.md.
bench: build
	$(GO) test -run '^$$' -bench . -benchmem ./internal/...
	$(GO) run ./bench -handler ./handler
	ENTRA_REVOKE_SOAK=1 $(GO) test -count=1 -v -run '^TestSoak$$' ./e2e

# The deployment zip alone (dist/entra-revoke.zip): handler for linux/amd64, host.json, functions.
package:
	VERSION=$(VERSION) COMMIT=$(COMMIT) scripts/package.sh

# Release files in dist/, reproducible (-trimpath, no VCS or build ID, CGO off, version stamped,
# zip entries dated by the last commit): entra-revoke.zip, handler-{linux-amd64,linux-arm64,
# darwin-arm64,windows-amd64.exe} and SHA256SUMS (verify: cd dist && sha256sum -c SHA256SUMS).
release:
	VERSION=$(VERSION) COMMIT=$(COMMIT) scripts/release.sh dist

# Builds the release twice and fails unless both are byte-identical and the checksums verify.
release-check:
	VERSION=$(VERSION) COMMIT=$(COMMIT) scripts/release-check.sh

clean:
	rm -rf handler dist
