# grail: the two commands a user needs are `make demo` and `make test`.
BUILD_DIR ?= build
JOBS ?= 2
BUILD_TYPE ?= RelWithDebInfo
PROMETHEUS_PORT ?=
# `make demo LEARNER_RANKS=2`: the demo on a 2-rank data-parallel learner group.
LEARNER_RANKS ?= 1
# `make demo SEED=n`: the demo with run seed and model init seed n (default: the spec's, 1).
SEED ?=
# `make demo DEMO=pipeline`: the staged SFT -> DPO -> RLVR run (deploy/demo/pipeline.yaml).
DEMO ?= arithmetic

.PHONY: all deps configure build test demo clean

all: build

# Debian packages (idempotent; apt-get runs only when something is missing).
deps:
	bash tools/install_deps.sh

configure: deps
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE)

build: configure
	cmake --build $(BUILD_DIR) -j$(JOBS)

# Installs, builds and runs every test; non-zero exit on any failure. Tiers run fastest
# first, so a failure shows early: unit (seconds), then integration (real processes on
# loopback, minutes), then slow (the learning tests).
# Narrower runs: `make test CTEST_ARGS="-L unit"` (labels: unit, integration, slow, faults,
# data_parallel, rl, ...) runs one ctest with those arguments instead.
CTEST = ctest --output-on-failure --timeout 900
test: build
ifeq ($(strip $(CTEST_ARGS)),)
	cd $(BUILD_DIR) && $(CTEST) -L unit && $(CTEST) -LE 'unit|slow' && $(CTEST) -L slow
else
	cd $(BUILD_DIR) && $(CTEST) $(CTEST_ARGS)
endif

demo: build
	PROMETHEUS_PORT=$(PROMETHEUS_PORT) LEARNER_RANKS=$(LEARNER_RANKS) SEED=$(SEED) bash tools/demo.sh $(BUILD_DIR) deploy/demo/$(DEMO).yaml

clean:
	rm -rf $(BUILD_DIR)
