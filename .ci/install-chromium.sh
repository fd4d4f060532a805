#!/usr/bin/env bash
# Debian's chromium and chromedriver, for the test that renders /docs headless
# (tests/e2e/test_api_docs_browser.py). Installed once; the packages stay on the machine.
set -euo pipefail
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium chromium-driver
