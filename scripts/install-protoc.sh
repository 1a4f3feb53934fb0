#!/usr/bin/env bash
# Installs protoc from Debian's protobuf-compiler package when it is missing.
set -euo pipefail
if command -v protoc >/dev/null 2>&1; then
	exit 0
fi
sudo=""
if [ "$(id -u)" != 0 ]; then sudo=sudo; fi
$sudo apt-get update -qq
$sudo apt-get install -y -qq protobuf-compiler
