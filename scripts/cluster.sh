#!/usr/bin/env bash
# Starts a 3-node Dux cluster on 127.0.0.1 for trying things out. Ctrl-C
# stops it; the data stays in ./dux-data/cluster and is reused next time.
set -euo pipefail
duxd=${1:-bin/duxd}
dir=dux-data/cluster
mkdir -p "$dir"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait; exit 0' INT TERM
for i in 1 2 3; do
	base=$((7700 + 10 * i))
	joins=()
	for j in 1 2 3; do
		[ "$j" = "$i" ] || joins+=(--join "127.0.0.1:$((7700 + 10 * j + 3))")
	done
	"$duxd" agent --name "n$i" --data-dir "$dir/n$i" \
		--grpc-addr "127.0.0.1:$base" --http-addr "127.0.0.1:$((base + 1))" \
		--raft-addr "127.0.0.1:$((base + 2))" --gossip-addr "127.0.0.1:$((base + 3))" \
		--bootstrap-expect 3 "${joins[@]}" >"$dir/n$i.log" 2>&1 &
	pids+=($!)
done
echo "Dux cluster of 3 members (logs in $dir/n*.log):"
for i in 1 2 3; do
	base=$((7700 + 10 * i))
	echo "  n$i  gRPC 127.0.0.1:$base  HTTP http://127.0.0.1:$((base + 1))/v1/"
done
echo "Try:  DUX_ADDR=127.0.0.1:7710,127.0.0.1:7720,127.0.0.1:7730 bin/duxd raft peers"
echo "Ctrl-C stops the cluster."
wait
