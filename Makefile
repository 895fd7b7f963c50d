# ailab.cluster — lab and test entry points.
#   make lab    every layer of the lab on the default (sandbox) inventory (docs/sandbox.md)
#   make test   set everything up and run every test tier, then print a summary
# Tiers alone: make lint | sanity | units | security | molecule | integration
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV        ?= .venv
CACHE       := .cache
STAMP       := $(CACHE)/stamps
BIN         := $(CURDIR)/$(VENV)/bin
PY          := $(BIN)/python
export PATH := $(BIN):$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export AILAB_REFERENCE ?= $(abspath $(CURDIR)/../shared/reference)
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# Tier results land here; `make summary` prints them.
export AILAB_RESULTS := $(CURDIR)/$(CACHE)/results

# ansible-core 2.20+ needs Python >= 3.12: take the first suitable interpreter.
PYTHON_CANDIDATES := python3.13 python3.12 $(shell command -v pyenv >/dev/null 2>&1 && \
	for v in 3.13 3.12; do p=$$(pyenv prefix $$(pyenv versions --bare | grep -E "^$$v(\.|$$)" | tail -1) 2>/dev/null) && echo $$p/bin/python3; done) python3
BASE_PYTHON ?= $(shell for p in $(PYTHON_CANDIDATES); do \
	command -v $$p >/dev/null 2>&1 || [ -x "$$p" ] || continue; \
	$$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null && { command -v $$p || echo $$p; } && break; done)

.PHONY: help setup venv system images lab lab-reset lab-clean check export docs mutation test lint sanity units security molecule integration summary clean refreeze build

help:
	@echo "make lab          every layer of the lab on inventories/sandbox (simulator, containers, export)"
	@echo "make lab-reset    forget the sandbox's simulated Proxmox VE cluster"
	@echo "make lab-clean    remove the sandbox: containers, kubesim volume, simulator state, build/sandbox"
	@echo "make check        check an inventory without changing anything (INVENTORY=inventories/<lab>)"
	@echo "make export       write every Kubernetes-facing layer as files and validate them (INVENTORY=, EXPORT_DIR=)"
	@echo "make test         set up and run all tiers (lint, sanity, units, molecule, integration)"
	@echo "make lint|sanity|units|security|molecule|integration   one tier"
	@echo "make build        ansible-galaxy collection build"
	@echo "make docs         regenerate docs/variables.md from the roles' argument specs"
	@echo "make mutation     mutation testing (mutmut) of plugins/module_utils, score per file; not part of make test"

# ---------------------------------------------------------------- set-up
$(STAMP):
	@mkdir -p $@

$(STAMP)/venv: requirements-dev.txt constraints.txt | $(STAMP)
	@if [ -z "$(BASE_PYTHON)" ]; then \
	  echo "ERROR: no Python >= 3.12 found; ansible-core 2.21 needs it on the controller." >&2; \
	  echo "  Debian 13, Ubuntu 24.04: apt-get install python3 python3-venv   (3.13 / 3.12)" >&2; \
	  echo "  Debian 12 ships Python 3.11 only: install 3.13 with pyenv (pyenv install 3.13) or uv" >&2; \
	  echo "  (pip install --user uv && uv python install 3.13), then run" >&2; \
	  echo "  make BASE_PYTHON=/path/to/python3.13 <target>   (pyenv: \$$(pyenv prefix 3.13)/bin/python3)" >&2; \
	  exit 1; fi
	@echo "==> virtual environment $(VENV) with $(BASE_PYTHON)"
	@test -x $(PY) || $(BASE_PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
	@echo "==> installing the pinned Python tools ($$(grep -c '==' constraints.txt) packages from constraints.txt; about a minute the first time)"
	@set -o pipefail; $(PY) -m pip install --progress-bar off -r requirements-dev.txt -c constraints.txt 2>&1 \
	  | grep --line-buffered -E "^(Collecting|ERROR|error)" | sed -u 's/^Collecting /    /' ; \
	  test $${PIPESTATUS[0]} -eq 0
	@touch $@

venv: $(STAMP)/venv

# System packages and the Docker daemon the molecule and integration tiers use.
system: | $(STAMP)
	@bash tests/harness/system.sh

images: system
	@bash tests/images/build.sh

setup: venv images

# ---------------------------------------------------------------- main job
# Every layer of the lab on inventories/sandbox (docs/sandbox.md): the Proxmox layer against the PVE API
# simulator, the node layer on local systemd containers (when Docker answers; their images are built
# first), the Kubernetes layer against the kubeadm test double in those containers (export only without
# Docker), the platform layers as validated files in build/sandbox/export, the report.
lab: venv
	@if docker info >/dev/null 2>&1; then bash tests/images/build.sh; fi
	@$(PY) tests/harness/lab.py

# Check a lab inventory (unknown variables ...) without contacting any host.
INVENTORY ?= inventories/sandbox
check: venv
	@ansible-playbook -i $(INVENTORY) playbooks/check.yml

# Every Kubernetes-facing layer of an inventory as files (objects, releases.yml, values), validated;
# touches no host and no cluster.
EXPORT_DIR ?= build/export/$(notdir $(INVENTORY))
export: venv
	@$(PY) tests/harness/export.py $(INVENTORY) $(EXPORT_DIR) $(ARGS)

# Forget the sandbox's simulated Proxmox VE state (guests, HA, storages ...) and its CA.
lab-reset:
	rm -rf $(CACHE)/sandbox

# Remove the sandbox: its node containers and the kubesim state volume (label ailab.sandbox=1), the simulator
# state, build/sandbox.
lab-clean: venv
	@$(PY) tests/harness/lab.py clean

# docs/variables.md is generated from every role's meta/argument_specs.yml (a unit test fails when stale).
docs: venv
	@$(PY) tests/harness/variables_reference.py

# Mutation testing of plugins/module_utils (mutmut, a few minutes per file); ARGS="--help" for options.
mutation: venv
	@$(PY) tests/harness/mutation.py $(ARGS)

build: venv
	@mkdir -p build && ansible-galaxy collection build --force --output-path build .

# ---------------------------------------------------------------- tiers
test:
	@rm -rf $(AILAB_RESULTS); mkdir -p $(AILAB_RESULTS)
	@$(MAKE) --no-print-directory setup
	@$(PY) tests/harness/tier.py user-files
	@rc=0; for tier in lint sanity units security molecule integration; do \
	  $(MAKE) --no-print-directory $$tier || rc=1; done; \
	  $(PY) tests/harness/tier.py summary; exit $$rc

lint: venv
	@$(PY) tests/harness/tier.py lint

sanity: venv
	@$(PY) tests/harness/tier.py sanity

# promtool (system) checks the monitoring role's alert rules.
units: venv system
	@$(PY) tests/harness/tier.py units

# Secrets in output, bad inputs, faults (tests/unit/security): one line of figures at the end.
security: venv system
	@$(PY) tests/harness/tier.py security

molecule: venv images
	@$(PY) tests/harness/tier.py molecule $(SCENARIO)

integration: venv images
	@$(PY) tests/harness/tier.py integration

summary:
	@$(PY) tests/harness/tier.py summary

# Re-resolve the pinned tree after editing requirements-dev.txt.
refreeze:
	@$(BASE_PYTHON) -m venv $(CACHE)/freeze-venv && $(CACHE)/freeze-venv/bin/pip install -q -r requirements-dev.txt 2>&1 | grep -v "^WARNING: Location"; \
	  { echo "# Frozen dependency tree of requirements-dev.txt (make refreeze)."; \
	    $(CACHE)/freeze-venv/bin/pip freeze --exclude-editable | sort; } > constraints.txt && rm -rf $(CACHE)/freeze-venv
	@echo "constraints.txt updated"

clean:
	rm -rf $(CACHE) build tests/output
