# Two commands do all the set-up: `make demo` (quickstart) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install sdk-venv demo test test-backends lint bench bench-hosting gpu-data clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[dev,deep,postgres]'
	touch $(STAMP)

install: $(STAMP)

# The SageMaker Python SDK v2 in a venv of its own: its pins (protobuf<7, packaging<25) clash with
# ours, and the tests run it as a user's separate program (tests/integration/test_sagemaker_sdk.py).
SDK_VENV := .venv-sagemaker
SDK_STAMP := $(SDK_VENV)/.installed
SDK_PINS := tests/integration/sagemaker-sdk-constraints.txt

$(SDK_STAMP): $(SDK_PINS)
	$(PYTHON) -m venv $(SDK_VENV)
	$(SDK_VENV)/bin/pip install -q -c $(SDK_PINS) sagemaker
	touch $(SDK_STAMP)

sdk-venv: $(SDK_STAMP)

demo: $(STAMP)
	$(BIN)/opensage quickstart

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

# On every core (pytest-xdist; its tests mostly wait on processes and servers).
PYTEST := $(BIN)/pytest -q -n auto --dist worksteal

test: lint $(SDK_STAMP)
	$(PYTEST)

# The integration suite again with PostgreSQL as the store and an S3 service (moto) as the
# storage, each started by the tests (tests/backends.py; PostgreSQL's initdb must be on PATH),
# under the process runtime only: the runtimes are covered by `make test`.
test-backends: $(STAMP)
	OPENSAGE_TEST_BACKENDS=postgres,s3 OPENSAGE_TEST_RUNTIMES=process \
	  $(PYTEST) -p no:cacheprovider tests/integration

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_training.py

# Creates benchmarks/.venv-anchors (FastAPI, mlflow) on first use; rewrites its RESULTS.md section.
bench-hosting: $(STAMP)
	$(BIN)/python benchmarks/bench_hosting.py

# BlazingText's corpus and WS-353 from gensim's wheel, for benchmarks/h200.sh (the device has no
# gensim and no network): benchmarks/.data-text, which the device run carries.
gpu-data: $(STAMP)
	$(BIN)/python -c "import sys; sys.path.insert(0, 'benchmarks'); import bench_blazingtext as b; \
	  b.ensure_venv(); import shutil, pathlib; d = pathlib.Path('benchmarks/.data-text'); \
	  d.mkdir(exist_ok=True); [shutil.copy(b.gensim_data() / n, d) for n in ('lee_background.cor', 'wordsim353.tsv')]"

clean:
	rm -rf $(VENV) $(SDK_VENV) build *.egg-info src/*.egg-info
