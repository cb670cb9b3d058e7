# Two commands on a fresh machine: `make run` (set up, start the dashboard) and `make test` (set up, run every test).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8501
# Only this machine by default; make run HOST=0.0.0.0 shares the dashboard on the network (read-only without a password).
HOST ?= 127.0.0.1
export PYTHONPATH := $(CURDIR)

.PHONY: setup setup-dev setup-serve web web-if-npm served-page run serve test test-fast bench lint default-model clean

# The venv is rebuilt when requirements change: the stamp is older than the file.
$(BIN)/.requirements: requirements.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements.txt
	@touch $@

$(BIN)/.requirements-dev: requirements-dev.txt $(BIN)/.requirements
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	@touch $@

# The HTTP API's own environment (requirements-serve.txt says why it is apart): MLServer, onnxruntime, no TensorFlow.
SERVE_VENV := .venv-serve
$(SERVE_VENV)/bin/.requirements: requirements-serve.txt
	@test -x $(SERVE_VENV)/bin/python || $(PYTHON) -m venv $(SERVE_VENV)
	$(SERVE_VENV)/bin/python -m pip install --quiet -r requirements-serve.txt
	@touch $@

# onnxruntime-web for the static page (python -m core web-page) and the Node example (web/classify_csv.mjs), as
# web/package-lock.json pins it. npm ci writes node_modules/.package-lock.json: newer than the lock file, it is done.
web/node_modules/.package-lock.json: web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund --loglevel=error

web: web/node_modules/.package-lock.json

# The dashboard runs without Node.js: then only the web page export says what is missing.
web-if-npm:
	@if command -v npm >/dev/null 2>&1; then $(MAKE) --no-print-directory --silent web; \
	else echo "npm not found: the static web page needs Node.js and npm (make web); the dashboard runs without it"; fi

# The page the dashboard serves at app/static/page/index.html (dashboard/served_page.py): the shipped model's, written
# once when onnxruntime-web is there; the Export page can put a run's in its place.
served-page: setup web-if-npm
	@if [ -d web/node_modules/onnxruntime-web ] && [ ! -f dashboard/static/page/index.html ]; then \
	    $(BIN)/python -m core web-page --out dashboard/static/page >/dev/null && echo "web page: dashboard/static/page"; fi

setup: $(BIN)/.requirements

setup-serve: $(SERVE_VENV)/bin/.requirements

setup-dev: $(BIN)/.requirements-dev web setup-serve

run: setup web-if-npm served-page
	$(BIN)/streamlit run dashboard/app.py --server.port $(PORT) --server.address $(HOST)

# The Open Inference Protocol (KServe V2) over HTTP for MODEL (default: the shipped model), through MLServer:
# make serve MODEL=runs/<id>/model.onnx NAME=<id> SERVE_PORT=8080 HOST=0.0.0.0 (NAME: the model's name in the URLs,
# by default the file's name)
MODEL ?= models/imdb_simplernn.onnx
SERVE_PORT ?= 8080
serve: setup-serve
	$(SERVE_VENV)/bin/python -m core serve "$(MODEL)" --host $(HOST) --port $(SERVE_PORT) $(if $(NAME),--name $(NAME))

# Two test processes (pytest-xdist), each taking a whole test file at a time so that a module's fixtures (a trained
# run, a server) are built once: one file's waits on a server, a browser or a training process overlap the other's
# work; the longest files go first (tests/conftest.py). TEST_WORKERS=0 runs every test in one process.
TEST_WORKERS ?= 2
PYTEST := $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

test: setup-dev
	$(PYTEST)

test-fast: setup-dev
	$(PYTEST) -m "not data and not browser and not slow"

lint: setup-dev
	$(BIN)/bandit -q -c pyproject.toml -r core dashboard

bench: setup-dev
	$(BIN)/python bench/train_speed.py
	$(BIN)/python bench/pad_start_speed.py
	$(BIN)/python bench/first_epoch.py
	$(BIN)/python bench/train_overhead.py
	$(BIN)/python bench/xla_break_even.py
	$(BIN)/python -m core bench
	$(BIN)/python bench/padding_skip.py
	$(BIN)/python bench/plain_session.py
	$(BIN)/python bench/text_file.py
	$(BIN)/python bench/ray_scoring.py
	$(BIN)/python bench/load_test.py
	$(BIN)/python bench/api_speed.py

# Rebuilds models/imdb_simplernn.onnx: the seed trained on the real reviews (IMDB_DATA, else Keras's download),
# early stopping on val_loss with the best weights restored, exported with the step_probability output (and its
# text file, models/imdb_simplernn.text.onnx, which reads raw reviews).
default-model: setup
	run=$$($(BIN)/python -m core train --config models/imdb_simplernn.config.json | tail -n 1) \
	    && $(BIN)/python -m core export "$$run" --trajectory --out models/imdb_simplernn.onnx

clean:
	rm -rf $(VENV) $(SERVE_VENV) .pytest_cache .cache
