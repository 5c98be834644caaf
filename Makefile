# The two commands the README gives are `make run` and `make test`; everything else serves them.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test install web worker beat mqtt-broker mqtt-bridge lint bench drills clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) is required"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Embedded default: SQLite, a filesystem Celery broker, web + worker + beat + simulated devices (and,
# where Mosquitto is installed, a broker, the MQTT bridge and one simulated device on MQTT).
run: install
	DEBUG=True $(BIN)/python manage.py migrate --noinput
	DEBUG=True $(BIN)/python manage.py seed_demo
	DEBUG=True $(BIN)/python manage.py rundemo

test: install
	DEBUG=True $(BIN)/python manage.py makemigrations --check --dry-run >/dev/null
	$(BIN)/ruff check .
	$(BIN)/pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .

# Production-shaped processes (DATABASE_URL and REDIS_URL set); docker-compose.yml runs these same commands.
web: install
	$(BIN)/gunicorn portal.wsgi --bind 0.0.0.0:8000 --workers 2 --access-logfile - --logger-class portal.gunicorn_logging.Logger

worker: install
	$(BIN)/celery -A portal worker --loglevel INFO --concurrency 2

beat: install
	$(BIN)/celery -A portal beat --loglevel INFO

# MQTT beside HTTP (docs/operations.md, "MQTT"; MQTT_BRIDGE_PASSWORD set): the bridge, and Mosquitto
# with the configuration the portal writes (Debian's `mosquitto`).
mqtt-bridge: install
	$(BIN)/python manage.py mqtt_bridge

mqtt-broker: install
	mosquitto -c "$$($(BIN)/python manage.py mqtt_broker_config)"

# Benchmarks of the hot paths against baselines in the same run (PostgreSQL, Redis, gunicorn, wrk,
# Mosquitto for MQTT ingest).
bench: install
	bash .ci/services
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	test -x /usr/sbin/mosquitto || (apt-get update -qq && apt-get install -y -qq mosquitto)
	$(BIN)/python -m bench.run $(BENCH_ARGS)

# The reliability and security drills on this machine's PostgreSQL and Redis, printing their figures
# (they also run inside `make test`): among them the two-hosts drill (two web servers, two workers,
# two beats, one of each killed), then 200 owners claiming through gunicorn at once.
DRILL_ENV := CI=true DATABASE_URL=postgres://postgres@127.0.0.1:5432/portal REDIS_URL=redis://127.0.0.1:6379/0
drills: install
	bash .ci/services
	$(DRILL_ENV) $(BIN)/pytest -s -q tests/hardening tests/drills tests/apps/test_worker.py tests/claiming/test_race.py \
		tests/devices/test_outbox.py tests/apps/test_health.py tests/apps/test_ssrf.py tests/apps/test_schema.py
	$(BIN)/python bench/bench_claims.py --owners 200

clean:
	rm -rf $(VENV) var
