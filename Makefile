# Two commands on a fresh machine: `make demo` and `make test` (both set up .venv first).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup demo test lab bench models figures clean

setup: $(STAMP)

# pip's --no-compile skips writing bytecode for the ~20,000 installed files (55 s); the modules the
# notebooks, their kernels and the tests import are compiled here instead, once, by importing them
# (24-72 s measured), also where PYTHONDONTWRITEBYTECODE is set (as on CI): there every kernel would otherwise
# recompile the deep-learning stack from source and start in ~16 s instead of ~6 s (measured on 2 cores).
# Two imports side by side, one per core (compiling is single-threaded): the library with its deep-learning
# stack, and the tools (Jupyter, nbconvert, UMAP's numba code, pytest, Selenium): 45-54 s instead of 59-72 s.
WARM_LIB := import occfau_lib.viz, occfau_lib.widgets, occfau_lib.experiments, occfau_lib.latent_space, occfau_lib.explorer, occfau_lib.record, \
	occfau_lib.cli
WARM_TOOLS := import matplotlib.pyplot, ipywidgets, bokeh.plotting, sklearn.metrics, sklearn.neighbors, ipykernel.kernelapp, nbclient, \
	nbconvert, umap, pytest, xdist.plugin, jupyterlab.labapp, selenium.webdriver

# Re-install when the dependency list changes; an editable install picks up code edits by itself.
$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --no-compile -e ".[test]"
	PYTHONDONTWRITEBYTECODE= $(PY) -c "$(WARM_TOOLS)" & tools=$$!; \
	PYTHONDONTWRITEBYTECODE= $(PY) -c "$(WARM_LIB)"; lib=$$?; wait $$tools && test $$lib = 0
	touch $(STAMP)

# The main job: every notebook on the demo profile, executed into build/notebooks/, then rendered as
# the offline book build/site/index.html (tools/book.py: index, lecture path, notebooks, solutions,
# TOC, search; nothing fetched from the network). JOBS=auto runs two at a time, each kernel
# with half the cores, longest ready one first: a lone notebook keeps only 1.4-1.7 of 2 cores busy on
# average, so two side by side finish the six in 474 s instead of 652 s on 2 cores (tools/run_notebooks.py).
# JOBS=1 runs them one after the other, in order, each with every core (the notebooks' own runtimes).
JOBS ?= auto
demo: setup
	OCCFAU_PROFILE=$${OCCFAU_PROFILE:-demo} HF_HUB_OFFLINE=1 $(PY) tools/run_notebooks.py notebooks build/notebooks \
		--site build/site --jobs $(JOBS)

# Train (or load) every model the notebooks use on the demo profile and write them to data/models/
# (safetensors + manifest.json): the models a fresh clone's `make demo` loads instead of training.
models: setup
	OCCFAU_PROFILE=$${OCCFAU_PROFILE:-demo} HF_HUB_OFFLINE=1 $(PY) tools/ship_models.py --half

# The README's figures (docs/figures/), cut from the notebooks `make demo` executed.
figures: setup
	$(PY) tools/cut_figures.py build/notebooks docs/figures

# The tests in one worker per core (at most 4; TEST_JOBS=0 runs them in this process), each worker with
# cores // workers threads (tests/conftest.py), the long ones handed out first and the rest stolen by
# whichever worker is free (--dist worksteal). First the browser test's Chromium and chromedriver,
# installed with apt-get where missing (or one line saying what to install: tools/browser-deps.sh).
TEST_JOBS ?= auto
test: setup
	bash tools/browser-deps.sh
	HF_HUB_OFFLINE=1 $(PY) -m pytest -n $(TEST_JOBS) --maxprocesses 4 --dist worksteal

lab: setup
	HF_HUB_OFFLINE=1 $(VENV)/bin/jupyter lab notebooks

bench: setup
	$(PY) benchmarks/bench_render.py
	$(PY) benchmarks/pixel_baseline.py
	$(PY) benchmarks/bench_inference.py
	$(PY) benchmarks/bench_methods.py

clean:
	rm -rf build data/cache data/synthfacs-*
