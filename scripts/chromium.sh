#!/usr/bin/env bash
# Install (from Debian's packages) or locate the headless Chromium and chromedriver that the memory
# browser's end-to-end test drives through Selenium: scripts/chromium.sh install|status.
# Debian's own builds: no browser download from a CDN (Playwright's and Selenium Manager's need one).
set -euo pipefail

present() { command -v chromium >/dev/null && command -v chromedriver >/dev/null; }

install() {
  present && return 0
  if [ "$(id -u)" != 0 ]; then
    echo "chromium and chromedriver are not installed: run 'sudo apt-get install chromium chromium-driver'" >&2
    exit 1
  fi
  echo "installing chromium and chromium-driver from Debian's packages" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
}

case "${1:-install}" in
  install) install ;;
  status) present && echo "chromium $(chromium --version 2>/dev/null | awk '{print $2}'), $(command -v chromedriver)" \
            || { echo "not installed"; exit 1; } ;;
  *) echo "usage: $0 install|status" >&2; exit 2 ;;
esac
