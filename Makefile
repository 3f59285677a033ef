# The README's two commands: `make demo` (the main job) and `make test` (the test suite).
PYTHON ?= python3
# Debian packages emoji-XTD is built from (Noto Color Emoji, CLDR annotations; raqm/fribidi for Pillow's layout;
# npm fetches v2's Twemoji images, `npm pack emoji-datasource-twitter@16.0.0`).
SYSTEM_PACKAGES = fonts-noto-color-emoji unicode-cldr-core libraqm0 npm

.PHONY: install system-deps demo test

system-deps:
	@dpkg -s $(SYSTEM_PACKAGES) >/dev/null 2>&1 || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SYSTEM_PACKAGES); }

# CLIP_benchmark for tests/test_openclip.py: only its metrics module is used, which needs torch and tqdm;
# --no-deps keeps out what the rest of it pulls in (open_clip, scikit-learn, pycocoevalcap, webdataset pins).
CLIP_BENCHMARK = clip-benchmark==1.6.2

install:
	$(PYTHON) -m pip install -q -e '.[dev]'
	$(PYTHON) -m pip install -q --no-deps $(CLIP_BENCHMARK)

demo: system-deps install
	$(PYTHON) recipes/emoji_xtd_pipeline.py

test: system-deps install
	$(PYTHON) -m pytest -q
