#!/usr/bin/env bash
# Prints the path of a Chromium (or Chrome) binary for the browser tests.
# When none is installed and we run as root on a system with apt-get, it
# installs Debian's chromium package first. Exits 1, printing nothing on
# stdout, when no browser can be had; the tests then skip, or fail when
# DUX_REQUIRE_BROWSER=1 or DUX_REQUIRE_DOCKER=1.
set -euo pipefail

find_browser() {
	local name
	if [[ -n "${DUX_CHROMIUM:-}" && -x "${DUX_CHROMIUM}" ]]; then
		echo "$DUX_CHROMIUM"
		return 0
	fi
	for name in chromium chromium-browser google-chrome google-chrome-stable; do
		if command -v "$name" >/dev/null 2>&1; then
			command -v "$name"
			return 0
		fi
	done
	return 1
}

if find_browser; then
	exit 0
fi
if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
	echo "ensure-chromium: installing Debian's chromium package" >&2
	export DEBIAN_FRONTEND=noninteractive
	# Wait for another apt/dpkg run to finish instead of failing at once.
	apt-get -o DPkg::Lock::Timeout=300 update >&2
	apt-get -o DPkg::Lock::Timeout=300 install -y --no-install-recommends chromium >&2
	if find_browser; then
		exit 0
	fi
fi
echo "ensure-chromium: no chromium, chromium-browser or google-chrome found" >&2
exit 1
