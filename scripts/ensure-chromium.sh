#!/usr/bin/env bash
# Make sure headless Chromium is installed for the dashboard's browser test (Debian's package).
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ] && ! command -v sudo >/dev/null 2>&1; then
  echo "Chromium is missing and this user cannot install it: apt-get install -y chromium" >&2
  exit 1
fi
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "installing Chromium (Debian package 'chromium') for the dashboard browser test ..." >&2
export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get install -y -q chromium >/tmp/ensure-chromium.log 2>&1; then
  $SUDO apt-get update -q >>/tmp/ensure-chromium.log 2>&1
  $SUDO apt-get install -y -q chromium >>/tmp/ensure-chromium.log 2>&1 || {
    echo "could not install Chromium; see /tmp/ensure-chromium.log" >&2
    exit 1
  }
fi
command -v chromium >/dev/null 2>&1
