#!/usr/bin/env bash
# System packages Bonsai needs on Debian: oneDNN (GEMM); libxml2 (FoundationXML, used by the tests). Idempotent.
set -euo pipefail
if [ -f /usr/include/oneapi/dnnl/dnnl.h ] && ldconfig -p | grep -q libdnnl.so && ldconfig -p | grep -q libxml2.so.2; then exit 0; fi
SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libdnnl-dev libxml2 >/dev/null
