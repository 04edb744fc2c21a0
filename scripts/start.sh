#!/usr/bin/env bash
# `npm start [-- serve's flags]`: set up and build, make the debian image when it is missing, then
# serve. --data and --config reach the image build too, so the image lands where that node looks.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --build
image_args=()
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[i]}" in
    --data | --config) image_args+=("${args[i]}" "${args[i + 1]:-}") ;;
    --data=* | --config=*) image_args+=("${args[i]}") ;;
  esac
done
node dist/cli/main.js image build debian --if-missing ${image_args[@]+"${image_args[@]}"} ||
  echo 'alacarte: starting without the debian image' >&2
exec node dist/cli/main.js serve "$@"
