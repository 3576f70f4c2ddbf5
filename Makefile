# botbottle.bottle — one entry point for set-up, the demo, tests and benchmarks.
# Every target installs what it needs first (scripts/setup.sh is idempotent).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
VENV := .venv/bin
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export PATH := $(CURDIR)/$(VENV):$(PATH)
# Hosts behind a TLS-intercepting proxy need its CA inside image builds.
EXTRA_CA ?= $(firstword $(wildcard $(SSL_CERT_FILE) /etc/ssl/certs/ca-certificates.crt))

.PHONY: help setup images test-images pipelock-images demo console lint sanity unit integration molecule test bench bench-smoke bench-real clean

help:
	@echo "make demo    set up and launch the demo agent in a bottle"
	@echo "make console watch bottles and decide their asks (ARGS='-i inventory.yml' for an inventory's hosts)"
	@echo "make test    set up and run every test (lint, sanity, unit, integration, molecule)"
	@echo "make bench   launch-cost, chain, DLP-scan, git-push-scan, fleet, package-manager and soak benchmarks"
	@echo "make bench-real   npm and pip through a bottle against the public registries (opt-in)"
	@echo "make pipelock-images   the optional pipelock hop (needs a pipelock image or PIPELOCK_BINARY)"

setup:
	bash scripts/setup.sh

images: setup
	EXTRA_CA_FILE="$(EXTRA_CA)" bash scripts/seed-images.sh
	$(VENV)/ansible-playbook playbooks/images.yml -e bottle_image_extra_ca_file="$(EXTRA_CA)"

test-images: setup
	EXTRA_CA_FILE="$(EXTRA_CA)" bash scripts/seed-images.sh
	$(VENV)/ansible-playbook playbooks/images.yml -e bottle_image_extra_ca_file="$(EXTRA_CA)" -e bottle_images_include_testnet=true

# The optional pipelock hop: its image where one can be had, then the bundle built on it.
pipelock-images: images
	EXTRA_CA_FILE="$(EXTRA_CA)" bash scripts/seed-images.sh --pipelock
	$(VENV)/ansible-playbook playbooks/images.yml -e bottle_image_extra_ca_file="$(EXTRA_CA)" -e bottle_pipelock=true

# With ANTHROPIC_API_KEY or CLAUDE_CODE_OAUTH_TOKEN: the real agent; without: a scripted stand-in plays the model.
# make demo AGENT_KIND=codex: the same with OpenAI's Codex CLI (OPENAI_API_KEY).
AGENT_KIND ?= claude-code
demo: test-images
	AGENT_KIND="$(AGENT_KIND)" bash scripts/demo.sh

# The operator's console: this machine's bottles, or an inventory's hosts (make console ARGS="-i inv.yml").
console: setup
	$(VENV)/python console $(ARGS)

lint: setup
	$(VENV)/ansible-lint --profile production

sanity: setup
	cd "$$(scripts/collection-link.sh --copy)" && $(CURDIR)/$(VENV)/ansible-test sanity --local --python 3.11 --requirements

unit: setup
	$(VENV)/pytest tests/unit

integration: test-images
	bash tests/integration/run.sh

molecule: test-images
	$(VENV)/molecule test -s default
	$(VENV)/molecule test -s supervise
	$(VENV)/molecule test -s smolmachines
	$(VENV)/molecule test -s agent
	@# The optional pipelock hop runs where its image exists; elsewhere it did NOT run (not a pass).
	@if docker image inspect botbottle/bundle-pipelock:latest >/dev/null 2>&1; then \
	  $(VENV)/molecule test -s pipelock; \
	else \
	  echo "molecule pipelock: NOT RUN - no botbottle/bundle-pipelock image on this machine (make pipelock-images says how to get one)"; \
	fi

# Every benchmark's whole code path with tiny sizes, so none rots (part of make test).
bench-smoke: test-images
	$(VENV)/python bench/dlp_scan.py --smoke
	$(VENV)/python bench/git_scan.py --smoke
	$(VENV)/python bench/chain.py --smoke
	$(VENV)/python bench/launch.py --smoke
	$(VENV)/python bench/soak.py --smoke
	EXTRA_CA="$(EXTRA_CA)" $(VENV)/python bench/tools.py --smoke

# Each stage in turn, stopping at the first failure, with each stage's time printed at the end.
test: setup
	bash scripts/timed-stages.sh test-images lint sanity unit integration molecule bench-smoke

bench: test-images
	$(VENV)/python bench/launch.py
	$(VENV)/python bench/dlp_scan.py
	$(VENV)/python bench/git_scan.py
	$(VENV)/python bench/chain.py
	EXTRA_CA="$(EXTRA_CA)" $(VENV)/python bench/fleet.py
	EXTRA_CA="$(EXTRA_CA)" $(VENV)/python bench/tools.py
	$(VENV)/python bench/soak.py

# Opt-in, never part of make test: one npm install and one pip install of bench/tools.py's projects
# on this host, in a plain container and through a bottle, against the public registries (where this
# machine reaches them). UPSTREAM_CA: the CAs egress and the plain container trust upstream, by default
# this host's bundle (which holds a TLS-intercepting proxy's CA where there is one).
bench-real: images
	UPSTREAM_CA="$${UPSTREAM_CA:-$(EXTRA_CA)}" $(VENV)/python bench/tools.py --real

clean:
	rm -rf .build
