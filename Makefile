# Two commands for a new user:  `make demo`  and  `make test`.
SWIFT ?= swift
AFUSION = .build/release/afusion

.PHONY: setup build demo test bench clean

## Install system packages (as root) and the model; idempotent.
setup:
	@bash scripts/setup.sh

build: setup
	$(SWIFT) build -c release

## Set up, build, and run the main job.
demo: build
	$(AFUSION) embed "A man is eating food." "A man is riding a horse." "The new movie is awesome" | cut -c1-110

## Set up and run the test suite.
test: setup
	$(SWIFT) test

## Throughput figures at 1 and 2 threads.
bench: build
	$(AFUSION) bench forward --batch 32 --seq 128 --threads 1
	$(AFUSION) bench forward --batch 32 --seq 128 --threads 2

clean:
	rm -rf .build
