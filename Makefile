# Two entry points: `make app` and `make test`. Both create .venv on first use and only
# reinstall when pyproject.toml changes (the stamp file below depends on it). They install the
# core plus the [app] (Streamlit), [dicom] (pydicom) and [dev] (test tools) extras; a batch user
# needs only the core: `pip install .` (README, "Install").
# `make notebooks` runs every notebook in notebooks/ (full settings; VESSELFLOW_NB_SMALL=1 for
# a quick run) and writes HTML reports, plus the files the notebooks write, to reports/notebooks/.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
PORT   ?= 8501
NB_OUT := reports/notebooks

.PHONY: app test lint bench notebooks clean-venv

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo ">> installing vesselflow and its dependencies into $(VENV) (first run takes ~2 min)"
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[app,dicom,dev]'
	@touch $(STAMP)

app: $(STAMP)
	$(VENV)/bin/vesselflow app --port $(PORT)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/python -m pytest -q

bench: $(STAMP)
	$(PY) benchmarks/bench_flow.py
	$(VENV)/bin/vesselflow bench --drive ../shared/data/DRIVE

notebooks: $(STAMP)
	@mkdir -p $(NB_OUT)
	$(VENV)/bin/jupyter nbconvert --to html --execute --ExecutePreprocessor.timeout=3600 \
		--ExecutePreprocessor.kernel_name=python3 --output-dir $(NB_OUT) notebooks/*.ipynb

clean-venv:
	rm -rf $(VENV)
