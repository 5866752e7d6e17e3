# gmdiff: execute the chapters, build the book, run the tests.
PYTHON ?= python
NOTEBOOKS := $(wildcard notebooks/*.py)

.PHONY: all notebooks book test test-gpu bench bench-threads clean
all: notebooks book

# Execute every chapter with papermill (profile ci, the parameters cell's defaults) and
# store the executed notebook beside its source; prints each notebook's wall time.
notebooks:
	@for nb in $(NOTEBOOKS); do \
	  tmp=$$(mktemp --suffix .ipynb); start=$$(date +%s); \
	  $(PYTHON) -m papermill --no-progress-bar $$nb $$tmp || exit 1; \
	  mv $$tmp $${nb%.py}.ipynb; \
	  echo "$$nb: $$(( $$(date +%s) - start )) s"; \
	done

# Render the stored notebooks (execution is off): the book shows what papermill produced.
book:
	jupyter-book build . --warningiserror --keep-going

test:
	$(PYTHON) -m pytest --nbval -n 2 --dist loadfile

# The CUDA features' tests (marker gpu; skipped without CUDA) and the samplers' sync check.
test-gpu:
	$(PYTHON) -m pytest -m gpu tests -p no:cacheprovider -rs

# Benchmarks (benchmarks/run.py): ratios against diffusers and a bare loop, measured in one
# process, and the threads rows (1, 2, auto threads, quiet and under a synthetic load;
# benchmarks/threads.py), a bank of seeds batched against one run after another
# (benchmarks/ensemble.py); on a CUDA machine also throughput, memory and MFU. Writes
# results/bench_*.json and renders them into book/performance.md. BENCH_SIZE=full for the
# larger networks; `make bench-threads` re-measures only the threads rows.
BENCH_SIZE ?= ci
BENCH_THREADS ?= 2
bench:
	OMP_NUM_THREADS=$(BENCH_THREADS) $(PYTHON) -m benchmarks.run --size $(BENCH_SIZE) \
	  --note "$(BENCH_NOTE)"
	OMP_NUM_THREADS=1 $(PYTHON) -m benchmarks.ensemble --out results/bench_ensemble.json
	$(PYTHON) -m benchmarks.render

bench-threads:
	OMP_NUM_THREADS=$(BENCH_THREADS) $(PYTHON) -m benchmarks.threads --merge results/bench_cpu.json
	$(PYTHON) -m benchmarks.render

clean:
	rm -rf _build
