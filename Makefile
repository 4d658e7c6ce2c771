# Two commands for a new user:  `make demo`  and  `make test`.
SWIFT ?= swift
AFUSION = .build/release/afusion

.PHONY: setup build demo test bench clean

## Install system packages (as root) and the model; idempotent.
setup:
	@bash scripts/setup.sh

build: setup
	$(SWIFT) build -c release

## Set up, build, and run the main job: both stages on real data (a few minutes on 2 cores).
demo: build
	bash scripts/demo.sh

## Set up and run the test suite.
test: setup
	$(SWIFT) test

## Throughput figures at 1 and 2 threads.
bench: build
	for t in 1 2; do \
	  $(AFUSION) bench forward --batch 32 --seq 128 --threads $$t; \
	  $(AFUSION) bench train-adapter --batch 32 --seq 128 --threads $$t; \
	  $(AFUSION) bench train-fusion --adapters 3 --batch 32 --seq 128 --threads $$t; \
	  $(AFUSION) bench infer-fusion --adapters 3 --batch 32 --seq 128 --threads $$t; \
	done

clean:
	rm -rf .build
