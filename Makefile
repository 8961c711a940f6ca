# Qualiflow: `make run` sets everything up and serves the demo; `make test` sets up the same and runs every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export FLASK_APP := wsgi
DEMO_DB ?= sqlite:///$(CURDIR)/instance/qualiflow.sqlite

# The process studio (bpmn-js modeler, properties panel, bpmnlint, our app/static/js/studio) as one bundle.
STUDIO_BUNDLE := node_modules/.bin/esbuild app/static/js/studio/modeler.js --bundle --minify --format=iife \
	--target=es2020 --loader:.eot=file --loader:.svg=file --loader:.woff=file --loader:.woff2=file \
	--loader:.ttf=file --asset-names=[name]-[hash] --log-level=warning --outfile=app/static/vendor/studio/studio.js

.PHONY: setup venv assets translations db run test test-unit test-integration test-e2e bench screenshots lint clean

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

assets: node_modules/.installed
	rm -rf app/static/vendor
	mkdir -p app/static/vendor/bootstrap/css app/static/vendor/bootstrap/js app/static/vendor/swagger-ui
	cp node_modules/bootstrap/dist/css/bootstrap.min.css app/static/vendor/bootstrap/css/
	cp node_modules/bootstrap/dist/js/bootstrap.bundle.min.js app/static/vendor/bootstrap/js/
	cp node_modules/swagger-ui-dist/swagger-ui-bundle.js node_modules/swagger-ui-dist/swagger-ui.css \
	   node_modules/swagger-ui-dist/swagger-ui-standalone-preset.js app/static/vendor/swagger-ui/
	mkdir -p app/static/vendor/bpmn-js
	cp node_modules/bpmn-js/dist/bpmn-navigated-viewer.production.min.js node_modules/bpmn-js/dist/assets/diagram-js.css \
	   node_modules/bpmn-js/dist/assets/bpmn-js.css app/static/vendor/bpmn-js/
	cp -R node_modules/bpmn-js/dist/assets/bpmn-font app/static/vendor/bpmn-js/
	$(STUDIO_BUNDLE)

translations: venv
	$(BIN)/pybabel compile -d app/translations

db: setup
	DATABASE_URL=$(DEMO_DB) $(BIN)/flask db upgrade
	DATABASE_URL=$(DEMO_DB) $(BIN)/flask demo load

run: db
	DATABASE_URL=$(DEMO_DB) $(BIN)/waitress-serve --host 127.0.0.1 --port 5000 --threads 8 --call wsgi:serve

test: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest tests/unit tests/integration -q
	$(BIN)/python -m pytest tests/e2e -q

test-e2e: setup
	$(BIN)/python -m pytest tests/e2e -q

bench: setup
	$(BIN)/python bench/engine.py
	$(BIN)/python bench/trace.py
	$(BIN)/python bench/imports.py
	$(BIN)/python bench/layout.py

screenshots: setup
	$(BIN)/python -m tests.e2e.guide_screenshots

lint: venv
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) node_modules app/static/vendor instance
