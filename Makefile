# The two commands a newcomer needs are `make demo` and `make test`; both
# install what is missing and cache slow builds under ~/.cache/siskin.
SANDBOX := tests/sandbox/sandbox

.PHONY: test unit demo image sandbox-up sandbox-down lint

test: ## install what is missing, start the sandbox, run every test, stop it
	$(SANDBOX) test

unit: ## the offline tests only (engine, judges, routers, manifests; tests/it without the sandbox)
	cargo test --all-targets

demo: ## start the sandbox and roll a healthy and a faulty release through a canary
	demo/run.sh

image: ## the controller image as an OCI layout (no Docker needed); prints its digest
	image/build.sh

sandbox-up:
	$(SANDBOX) up

sandbox-down:
	$(SANDBOX) down

lint:
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings
