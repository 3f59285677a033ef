# The README's two commands: `make demo` (the main job) and `make test` (the test suite).
PYTHON ?= python3
# Debian packages emoji-XTD is built from (Noto Color Emoji, CLDR annotations; raqm/fribidi for Pillow's layout;
# npm fetches v2's Twemoji images, `npm pack emoji-datasource-twitter@16.0.0`).
SYSTEM_PACKAGES = fonts-noto-color-emoji unicode-cldr-core libraqm0 npm

.PHONY: install system-deps demo test

system-deps:
	@dpkg -s $(SYSTEM_PACKAGES) >/dev/null 2>&1 || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SYSTEM_PACKAGES); }

install:
	$(PYTHON) -m pip install -q -e '.[dev]'

demo: system-deps install
	$(PYTHON) recipes/emoji_xtd_pipeline.py

test: system-deps install
	$(PYTHON) -m pytest -q
