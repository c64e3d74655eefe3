# Entry points for operators and CI. Every target installs what it needs first.
SHELL := /bin/bash
VENV  ?= .venv
PY    := $(VENV)/bin/python
ACT   := source $(VENV)/bin/activate &&
LAB   := $(ACT) python tools/lab.py

.PHONY: help setup deploy lab-up lab-down test lint unit preflight molecule lab-test bench bench-db bench-lb bench-services bench-cache bench-pilots bench-faults clean

## help: these targets, one line each
help:
	@sed -n 's/^## \([a-z-]*\): /\1\t/p' $(firstword $(MAKEFILE_LIST)) | expand -t 16

## setup: project virtualenv with the pinned toolchain, and the collection link
setup: $(VENV)/.stamp .collections/ansible_collections/panda/facility .cache/pypi/.stamp
$(VENV)/.stamp: requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements.txt
	touch $@
# The PyPI pilot's source, for the lab test to run in a container (not installed here).
.cache/pypi/.stamp: requirements-pilot.txt $(VENV)/.stamp
	$(VENV)/bin/pip download --quiet --no-deps --no-binary :all: --dest .cache/pypi -r requirements-pilot.txt
	touch $@
.collections/ansible_collections/panda/facility:
	mkdir -p .collections/ansible_collections/panda
	ln -sfn ../../.. $@

## deploy: the whole facility into local containers (inventories/lab)
deploy: setup
	$(LAB) up
	$(ACT) python tools/sitecheck.py -i inventories/lab

## lab-up: the lab's containers, started, nothing deployed
lab-up: setup
	$(LAB) up
## lab-down: the lab's containers and network removed
lab-down: setup
	$(LAB) down

## test: every test: lint, unit, preflight, molecule scenarios, the lab deploy
test: setup
	$(ACT) tools/run-tests

## lint: ruff, vermin (Python 3.9 on hosts), argument specs, changelog, ansible-lint
## unit: the controller-side tests (filters, package, integration on a test MariaDB)
## preflight: bad inventories stop site.yml before any host is touched
## molecule: the molecule scenarios make test runs
## lab-test: the lab deployed fresh and tested tier by tier
lint unit preflight molecule lab-test: setup
	$(ACT) tools/run-tests $@

## bench: the lab's deploy timed: cold converge, no-op run, check-mode run
bench: setup
	$(ACT) python bench/converge.py
## bench-db: primary against replica queries/s, and replication lag under writes
bench-db: setup
	$(ACT) python bench/database.py
## bench-lb: the VIP's cost, requests lost per fault
bench-lb: setup
	$(ACT) python bench/loadbalancer.py
## bench-services: jobs acquired per second and latency, one server against two
bench-services: setup
	$(ACT) python bench/services.py
## bench-cache: pilot code downloads/s from Squid's memory against the origin
bench-cache: setup
	$(ACT) python bench/pilot_cache.py
## bench-pilots: how fast a submit host hands pilots to a site through Condor-G
bench-pilots: setup
	$(ACT) python bench/pilots.py
## bench-faults: the fault audit with full durations, and the VIP's failover gap
bench-faults: setup
	$(ACT) python bench/faults.py

## clean: the lab down, the collection link and caches removed
clean: lab-down
	rm -rf .collections .cache
