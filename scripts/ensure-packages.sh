#!/usr/bin/env bash
# Install the Debian packages named on the command line when they are missing.
# As root this runs apt-get; otherwise it prints the command to run and exits
# 1, so that callers can go on and let the tests that need them skip.
set -u
missing=()
for pkg in "$@"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "switch: missing system packages: ${missing[*]} (no apt-get here: install them by hand)" >&2
  exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "switch: missing system packages: ${missing[*]}" >&2
  echo "switch: run: sudo apt-get install -y ${missing[*]}" >&2
  echo "switch: tests that need them will be skipped" >&2
  exit 1
fi
echo "switch: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# An old package list finds nothing: refresh it once when an install fails.
if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
  apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
