# The two commands: `make demo` and `make test`. Everything they need is installed here.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export CONSOLE_TEST_POSTGRES_URL ?= postgresql+asyncpg://postgres@127.0.0.1:5432/postgres
export CONSOLE_TEST_REDIS_URL ?= redis://127.0.0.1:6379/0

.PHONY: demo test lint unit messages wheel clean bench

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# make demo PORT=8080 RATE=4: the port to serve on, and at most RATE new simulated calls a minute.
PORT ?= 8000
RATE ?= 4
demo: $(STAMP)
	$(BIN)/python -m console demo --port $(PORT) --rate $(RATE)

lint: $(STAMP)
	$(BIN)/ruff check console realtime integrations tests
	$(BIN)/mypy
	$(BIN)/lint-imports

unit: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider

test: lint unit

# Not part of `make test`: about 10 minutes, PostgreSQL and Redis needed; writes benchmarks/RESULTS.md.
bench: $(STAMP)
	$(BIN)/python -m benchmarks $(BENCH_ARGS)

messages: $(STAMP)
	bash scripts/messages.sh

wheel: $(STAMP)
	$(BIN)/python -m pip wheel --quiet --no-deps --no-build-isolation -w dist .

clean:
	rm -rf $(VENV) dist build *.egg-info var
