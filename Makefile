# Entry points for operators and CI. Every target installs what it needs first.
SHELL := /bin/bash
VENV  ?= .venv
PY    := $(VENV)/bin/python
ACT   := source $(VENV)/bin/activate &&
LAB   := $(ACT) python tools/lab.py

.PHONY: setup deploy lab-up lab-down test lint unit preflight molecule lab-test bench bench-db bench-lb bench-services bench-cache bench-pilots clean

## setup: project virtualenv with the pinned toolchain, and the collection link
setup: $(VENV)/.stamp .collections/ansible_collections/panda/facility
$(VENV)/.stamp: requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements.txt
	touch $@
.collections/ansible_collections/panda/facility:
	mkdir -p .collections/ansible_collections/panda
	ln -sfn ../../.. $@

## deploy: the whole facility into local containers (inventories/lab)
deploy: setup
	$(LAB) up
	$(ACT) python tools/sitecheck.py -i inventories/lab

lab-up: setup
	$(LAB) up
lab-down: setup
	$(LAB) down

## test: every test: lint, unit, preflight, molecule scenarios, the lab deploy
test: setup
	$(ACT) tools/run-tests

lint unit preflight molecule lab-test: setup
	$(ACT) tools/run-tests $@

bench: setup
	$(ACT) python bench/converge.py
bench-db: setup
	$(ACT) python bench/database.py
bench-lb: setup
	$(ACT) python bench/loadbalancer.py
bench-services: setup
	$(ACT) python bench/services.py
bench-cache: setup
	$(ACT) python bench/pilot_cache.py
bench-pilots: setup
	$(ACT) python bench/pilots.py

clean: lab-down
	rm -rf .collections .cache
