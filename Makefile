# Qualiflow: `make run` sets everything up and serves the demo; `make test` sets up the same and runs every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export FLASK_APP := wsgi
DEMO_DB ?= sqlite:///$(CURDIR)/instance/qualiflow.sqlite
PORT ?= 5000
# Links in e-mails (acknowledgment, SCAR response) point at the served port unless the environment says otherwise.
QUALIFLOW_BASE_URL ?= http://127.0.0.1:$(PORT)
VENDOR := app/static/vendor
STUDIO_SOURCES := $(shell find app/static/js/studio -type f)
MO_FILES := $(patsubst %.po,%.mo,$(wildcard app/translations/*/LC_MESSAGES/*.po))

# The process studio (bpmn-js modeler, properties panel, bpmnlint, our app/static/js/studio) as one bundle.
STUDIO_BUNDLE := node_modules/.bin/esbuild app/static/js/studio/modeler.js --bundle --minify --format=iife \
	--target=es2020 --loader:.eot=file --loader:.svg=file --loader:.woff=file --loader:.woff2=file \
	--loader:.ttf=file --asset-names=[name]-[hash] --log-level=warning --outfile=app/static/vendor/studio/studio.js

.PHONY: setup venv assets translations db run test test-unit test-integration test-e2e bench bench-quick screenshots docs lint clean

setup: venv assets translations

venv: $(BIN)/.installed

$(BIN)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --ignore-scripts
	touch $@

# The vendored files are rebuilt only when the npm packages or the studio's sources changed (a stamp file), so a
# second `make setup` (and so `make run` / `make test`) leaves app/static/vendor alone.
assets: $(VENDOR)/.built

$(VENDOR)/.built: node_modules/.installed $(STUDIO_SOURCES)
	rm -rf $(VENDOR)
	mkdir -p $(VENDOR)/bootstrap/css $(VENDOR)/bootstrap/js $(VENDOR)/swagger-ui
	cp node_modules/bootstrap/dist/css/bootstrap.min.css $(VENDOR)/bootstrap/css/
	cp node_modules/bootstrap/dist/js/bootstrap.bundle.min.js $(VENDOR)/bootstrap/js/
	cp node_modules/swagger-ui-dist/swagger-ui-bundle.js node_modules/swagger-ui-dist/swagger-ui.css \
	   node_modules/swagger-ui-dist/swagger-ui-standalone-preset.js $(VENDOR)/swagger-ui/
	mkdir -p $(VENDOR)/bpmn-js
	cp node_modules/bpmn-js/dist/bpmn-navigated-viewer.production.min.js node_modules/bpmn-js/dist/assets/diagram-js.css \
	   node_modules/bpmn-js/dist/assets/bpmn-js.css $(VENDOR)/bpmn-js/
	cp -R node_modules/bpmn-js/dist/assets/bpmn-font $(VENDOR)/bpmn-js/
	mkdir -p $(VENDOR)/chart.js
	cp node_modules/chart.js/dist/chart.umd.min.js $(VENDOR)/chart.js/
	$(STUDIO_BUNDLE)
	touch $@

# Each catalog is compiled when its .po file changed.
translations: $(MO_FILES)

%.mo: %.po | $(BIN)/.installed
	$(BIN)/pybabel compile -i $< -o $@

db: setup
	DATABASE_URL=$(DEMO_DB) $(BIN)/flask db upgrade
	DATABASE_URL=$(DEMO_DB) $(BIN)/flask demo load

run: db
	DATABASE_URL=$(DEMO_DB) QUALIFLOW_BASE_URL=$(QUALIFLOW_BASE_URL) $(BIN)/waitress-serve --host 127.0.0.1 --port $(PORT) --threads 8 --call wsgi:serve

test: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest tests/unit tests/integration -q
	$(BIN)/python -m pytest tests/e2e -q

test-e2e: setup
	$(BIN)/python -m pytest tests/e2e -q

# Every benchmark in bench/ once, then one summary table (figures, same-run ratios, goals, PASS / MISS).
bench: setup
	$(BIN)/python bench/summary.py

bench-quick: setup
	$(BIN)/python bench/summary.py --quick

screenshots: setup
	$(BIN)/python -m tests.e2e.guide_screenshots

# The documentation site (docs/*.md, mkdocs.yml) into site/; --strict turns broken links into errors.
docs: venv
	$(BIN)/mkdocs build --strict --site-dir site

lint: venv
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) node_modules $(VENDOR) instance site
