# MSR Workbench — two commands:  `make lab` (set up + open the lessons)  and  `make test` (set up + run all tests).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
TORCH  ?= torch==2.13.0
STAMP  := $(VENV)/.installed

.PHONY: setup lab test soundfonts browser bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install "$(TORCH)"
	$(BIN)/python -m pip install -e ".[lab,dev]"
	$(BIN)/python -m pip install --no-deps "tinysoundfont>=0.3"
	-@$(MAKE) --no-print-directory soundfonts
	-@$(MAKE) --no-print-directory browser
	touch $(STAMP)

# Better General-MIDI sounds where we may install system packages (root + apt); optional, never fatal.
soundfonts:
	@if [ -f /usr/share/sounds/sf2/FluidR3_GM.sf2 ]; then echo "FluidR3_GM already installed"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  (apt-get install -y --no-install-recommends fluid-soundfont-gm >/dev/null 2>&1 || \
	   (apt-get update >/dev/null 2>&1 && apt-get install -y --no-install-recommends fluid-soundfont-gm >/dev/null 2>&1)) \
	  && echo "installed FluidR3_GM" || echo "could not install fluid-soundfont-gm; using pretty_midi's TimGM6mb"; \
	else echo "not root: using pretty_midi's TimGM6mb SoundFont (see README for a better one)"; fi

# Debian's Chromium for the browser test (tests/test_browser.py); optional, never fatal.
browser:
	@if command -v chromium >/dev/null; then echo "chromium already installed"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  (apt-get install -y --no-install-recommends chromium >/dev/null 2>&1 || \
	   (apt-get update >/dev/null 2>&1 && apt-get install -y --no-install-recommends chromium >/dev/null 2>&1)) \
	  && echo "installed chromium" || echo "could not install chromium; the browser test will be skipped"; \
	else echo "not root: the browser test needs Debian's chromium (sudo apt install chromium)"; fi

# Loopback only, with a token: a random one per start unless JUPYTER_TOKEN is set (an environment variable, so
# other users cannot read it in `ps`); the browser opens with it.
lab: setup
	JUPYTER_TOKEN="$${JUPYTER_TOKEN:-$$($(BIN)/python -c 'import secrets; print(secrets.token_urlsafe(32))')}" \
	  $(BIN)/jupyter lab notebooks --ServerApp.ip=127.0.0.1 $$( [ "$$(id -u)" = 0 ] && echo --allow-root )

test: setup
	$(BIN)/python -m pytest tests

bench: setup
	for f in benchmarks/*.py; do $(BIN)/python $$f; done

clean:
	rm -rf $(VENV) .pytest_cache
