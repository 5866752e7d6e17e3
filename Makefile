# gmdiff: execute the chapters, build the book, run the tests.
PYTHON ?= python
NOTEBOOKS := $(wildcard notebooks/*.py)

.PHONY: all notebooks book test clean
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
	$(PYTHON) -m pytest --nbval

clean:
	rm -rf _build
