# The two commands a newcomer needs: `make book` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PROFILE ?= cpu

.PHONY: venv test lint data study book check lab lab-install labcheck napari-install clean help

help:
	@echo "make book [PROFILE=smoke|cpu|gpu]  venv, data, every notebook, HTML book (default PROFILE=cpu)"
	@echo "make test                          run the test suite and the docstring examples of nucleilib"
	@echo "make lint                          ruff check and ruff format --check of nucleilib, tests and benchmarks"
	@echo "make study [PROFILE=...]           execute the notebooks only"
	@echo "make book RETRAIN=1                train every model again from scratch and report how far each table moves"
	@echo "make book RESCORE=1                segment the test images again instead of reading the cached scores"
	@echo "make data                          download and verify the data (or use \$$NUCLEI_DATA_DIR)"
	@echo "make check [PROFILE=...]           open every page of the built book in headless Chromium"
	@echo "make lab                           JupyterLab on notebooks/ (chapters open as notebooks)"
	@echo "make labcheck                      open, run and save every chapter in JupyterLab; fail if one changes"
	@echo "make clean                         remove built HTML (keeps the venv and executed notebooks)"

venv: $(BIN)/.installed

$(BIN)/.installed: pyproject.toml requirements-lock.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c requirements-lock.txt -e '.[test]'
	touch $@

# napari's viewer tests need a display: a virtual one (Xvfb) when it is installed and none is set.
XVFB := $(if $(DISPLAY),,$(if $(shell command -v xvfb-run),xvfb-run -a -s "-screen 0 1600x1000x24"))

test: venv
	$(XVFB) $(BIN)/pytest

# ruff's rules and version are in pyproject.toml (the chapters are jupytext files and keep their own layout).
lint: venv
	$(BIN)/ruff check nucleilib tests benchmarks
	$(BIN)/ruff format --check nucleilib tests benchmarks

data: venv
	$(BIN)/nuclei fetch

# RETRAIN=1: train every model again from scratch (into artefacts/lab/retrain-PROFILE) and report
# how far each table moved from the committed run; the published run and book are not touched.
# RESCORE=1: segment the test images again instead of reading the networks' cached scores.
study: data
	$(BIN)/nuclei study --profile $(PROFILE) $(if $(RETRAIN),--retrain) $(if $(RESCORE),--rescore)

book: study
	$(if $(RETRAIN),@echo "retrained run: artefacts/lab/retrain-$(PROFILE)/ (executed notebooks in executed/, verify-report.csv)",$(BIN)/nuclei book --profile $(PROFILE))

check:
	$(BIN)/python -m nucleilib.study.book.sitecheck _build/$(PROFILE)/_build/html --screenshots _build/$(PROFILE)/screenshots

# Listens on this machine only; as root (a container), Jupyter needs --allow-root.
LAB_FLAGS ?= --ip=127.0.0.1 --no-browser $(if $(filter 0,$(shell id -u)),--allow-root)

# The kernels get the study's environment (oneDNN on), as `nuclei study` gives it.
lab: $(BIN)/.lab-installed
	$(BIN)/python -m nucleilib.study.lab $(LAB_FLAGS) notebooks/

lab-install: $(BIN)/.lab-installed

# The napari plugin and its test tools (Qt, pytest-qt); the system needs Xvfb and Qt's libraries for the tests.
napari-install: $(BIN)/.napari-installed

$(BIN)/.napari-installed: $(BIN)/.installed
	$(BIN)/pip install --quiet -c requirements-lock.txt -e '.[napari]'
	touch $@

# Headless Chromium drives JupyterLab on a copy of each chapter (nothing tracked is opened).
labcheck: $(BIN)/.lab-installed
	$(BIN)/python -m nucleilib.study.book.labcheck notebooks/*.py

$(BIN)/.lab-installed: $(BIN)/.installed
	$(BIN)/pip install --quiet -c requirements-lock.txt -e '.[lab]'
	touch $@

clean:
	rm -rf _build
