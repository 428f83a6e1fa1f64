#!/usr/bin/env bash
# Prints the path of an official Node binary of line LINE for ARCH (x64, arm64),
# taken from the npm registry's node-linux-ARCH@LINE package into a cache folder
# (${FORKSAFE_NODE_CACHE:-~/.cache/forksafe-nodes}) the first time it is asked for.
set -euo pipefail
line=${1:?usage: node-line.sh LINE [x64|arm64]}
arch=${2:-x64}
cache=${FORKSAFE_NODE_CACHE:-$HOME/.cache/forksafe-nodes}
dir="$cache/$arch-$line"
if [ ! -x "$dir/package/bin/node" ]; then
  mkdir -p "$dir"
  tmp=$(mktemp -d "$dir/.fetch.XXXXXX")
  (cd "$tmp" && npm pack --silent "node-linux-$arch@$line" > /dev/null && tar xzf node-linux-"$arch"-*.tgz)
  rm -rf "$dir/package"
  mv "$tmp/package" "$dir/package"
  rm -rf "$tmp"
fi
echo "$dir/package/bin/node"
