# Berth developer and CI entry points. `make test` is the README's test command and what
# .ci/run runs; it prepares the machine itself (Debian packages, dockerd, .venv), so it
# works on a fresh Debian 12 machine as root and is a fast no-op check on a prepared one.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
# Extra pytest options, e.g. `make test PYTEST_ARGS='-m "not e2e" -x'`.
PYTEST_ARGS ?=

.PHONY: test lint images docker venv

docker:
	@bash scripts/ensure-docker.sh

venv:
	@bash scripts/ensure-venv.sh

# pytest exit 5 (nothing collected) is a failure: a green run must have run tests.
# Two pytest-xdist workers, one per work unit (tests/conftest.py): the pure unit tests on one,
# every test that talks to the engine, in order and alone, on the other.
test: docker venv
	@rc=0; $(VENV)/bin/pytest -q -n 2 --durations=15 $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then \
	  echo "make test: pytest collected no tests (exit 5); treating that as a failure" >&2; \
	fi; \
	exit $$rc

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy tests/support

# Builds the local test images (no registry needed); the Debian base takes ~1 min the
# first time, seconds afterwards (rootfs cached under /var/cache/berth-rootfs).
images: docker venv
	$(PY) -c 'from tests.support.images import main; raise SystemExit(main())'

# demo targets: see below

# The README's main job: the example stack converged and served by Berth (as a container),
# with a zero-downtime upgrade and an automatic rollback under live traffic.
.PHONY: demo demo-down
demo:
	@bash scripts/demo.sh

demo-down:
	@bash scripts/demo-down.sh
