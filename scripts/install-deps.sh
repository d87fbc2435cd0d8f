#!/usr/bin/env bash
# System packages Bonsai needs on Debian: oneDNN (GEMM); libxml2 (FoundationXML, used by the tests).
# With --mpi also Open MPI (libopenmpi-dev, openmpi-bin) for data-parallel training (`swift build --traits MPI`).
# Idempotent.
set -euo pipefail
mpi=0; [ "${1:-}" = --mpi ] && mpi=1
have() { [ -f /usr/include/oneapi/dnnl/dnnl.h ] && ldconfig -p | grep -q libdnnl.so && ldconfig -p | grep -q libxml2.so.2 \
  && { [ $mpi = 0 ] || { command -v mpirun >/dev/null && pkg-config --exists ompi-c; }; }; }
have && exit 0
SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
packages="libdnnl-dev libxml2"; [ $mpi = 1 ] && packages="$packages libopenmpi-dev openmpi-bin pkg-config"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $packages >/dev/null
