#!/usr/bin/env bash
# Benchmarks etcd 3.4 on a fresh 3-member cluster on 127.0.0.1 with the
# workloads of scripts/bench-cluster.sh, for docs/BENCHMARKS.md.
#
#   scripts/bench-etcd.sh
#
# It installs etcd-server and etcd-client from Debian (apt-get) if etcd is
# missing, builds tools/etcdbench (its own Go module, so Dux never depends
# on etcd; ETCDBENCH=path uses a binary you built), starts three members
# with default settings (fsync on every commit, snapshot every 100,000
# entries), clients on 127.0.0.1:2379i and peers on 127.0.0.1:2380i for
# member i, data in a temporary directory, and stops them however the
# script ends.
#
# Runs (BENCH_RUNS, in this order by default):
#   put-64 put-256            etcdbench put, 64 and 256 clients, 10,000 keys, 256-byte values
#   get-linearizable          etcdbench get --consistency linearizable, 64 clients
#   get-serializable          etcdbench get --consistency serializable, 64 clients
#   watch-100 watch-1000      etcdbench watch, 1,000 watchers, 100 and 1,000 writes/s, each
#                             watcher on a gRPC stream of its own, as each Dux subscription is
#   watch-shared-100 watch-shared-1000
#                             the same with etcd's client default: the watchers of one
#                             connection share one gRPC stream
#   memory                    a second fresh cluster: 100,000 distinct keys written
#                             once, then VmRSS/VmHWM of each member once every member
#                             has taken a snapshot
#   profile                   (not by default) a 10 s CPU profile of the leader and
#                             of a follower while etcdbench put runs with 64 clients
# etcd keeps every revision until it is compacted; the script compacts to
# the current revision before each run, as a production etcd would be
# compacted periodically. Each put/get run starts with a 3 s warm-up whose
# rate sets --total to about BENCH_SECONDS of work; then BENCH_REPEAT
# measured repetitions; the table shows the median and, in brackets, the
# min-max.
#
# Server CPU/op is the user+system CPU of the three etcd processes
# (/proc/PID/stat) over the measured phase of a run (etcdbench get's writing
# of its key space excluded), divided by its operations; client CPU/op is
# what etcdbench reports of itself.
#
# Before each measured repetition the script waits (up to BENCH_QUIET_WAIT
# seconds, 300) until other work on the machine has used less than
# BENCH_MAX_OTHER cores (0.2) for a second, and it runs a repetition again
# (up to BENCH_TRIES times in all, 3) when other work used more than that
# during it.
#
# Environment: BENCH_RUNS, BENCH_REPEAT (3), BENCH_SECONDS (10), BENCH_OUT
# (keep the JSON results, logs and profiles in this directory; default a
# temporary one, removed at the end), BENCH_QUIET_WAIT, BENCH_TRIES,
# BENCH_MAX_OTHER, ETCDBENCH.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
runs=${BENCH_RUNS:-put-64 put-256 get-linearizable get-serializable watch-100 watch-1000 watch-shared-100 watch-shared-1000 memory}
repeat=${BENCH_REPEAT:-3}
seconds=${BENCH_SECONDS:-10}
watchers=1000

if ! command -v etcd >/dev/null || ! command -v etcdctl >/dev/null; then
	echo "installing etcd-server and etcd-client from Debian..."
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server etcd-client >/dev/null
fi
case $(etcd --version | awk '/etcd Version/ { print $3 }') in
3.4.*) ;;
*) echo "bench-etcd: WARNING: etcd $(etcd --version | awk '/etcd Version/ { print $3 }') is not 3.4" >&2 ;;
esac
for tool in jq curl; do
	command -v "$tool" >/dev/null || { echo "bench-etcd: needs $tool (apt-get install $tool)" >&2; exit 2; }
done
[ -x /usr/bin/time ] || { echo "bench-etcd: needs /usr/bin/time (apt-get install time)" >&2; exit 2; }

work=$(mktemp -d -t etcd-bench.XXXXXX)
out=${BENCH_OUT:-$work/out}
mkdir -p "$out"
clk_tck=$(getconf CLK_TCK)
pids=()
sampler=

any_alive() {
	local p
	for p; do kill -0 "$p" 2>/dev/null && return 0; done
	return 1
}
stop_cluster() {
	[ -n "$sampler" ] && { kill "$sampler" 2>/dev/null || true; wait "$sampler" 2>/dev/null || true; sampler=; }
	[ ${#pids[@]} -gt 0 ] || return 0
	kill "${pids[@]}" 2>/dev/null || true
	for _ in $(seq 100); do
		any_alive "${pids[@]}" || break
		sleep 0.1
	done
	kill -KILL "${pids[@]}" 2>/dev/null || true
	wait "${pids[@]}" 2>/dev/null || true
	pids=()
}
cleanup() {
	stop_cluster
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

etcdbench=${ETCDBENCH:-}
if [ -z "$etcdbench" ]; then
	echo "building tools/etcdbench..."
	(cd "$root/tools/etcdbench" && go build -o "$work/etcdbench" .)
	etcdbench=$work/etcdbench
fi

endpoints=127.0.0.1:23791,127.0.0.1:23792,127.0.0.1:23793
cluster=e1=http://127.0.0.1:23801,e2=http://127.0.0.1:23802,e3=http://127.0.0.1:23803
ctl() { etcdctl --endpoints "$endpoints" --command-timeout 10s "$@"; }

# start_cluster DIR starts three members with their data under DIR and
# waits until they have a leader.
start_cluster() {
	local dir=$1 i token=bench-$$-$RANDOM deadline=$((SECONDS + 60))
	mkdir -p "$dir"
	for i in 1 2 3; do
		etcd --name "e$i" --data-dir "$dir/e$i" --logger zap --log-outputs stderr --enable-pprof \
			--listen-client-urls "http://127.0.0.1:2379$i" --advertise-client-urls "http://127.0.0.1:2379$i" \
			--listen-peer-urls "http://127.0.0.1:2380$i" --initial-advertise-peer-urls "http://127.0.0.1:2380$i" \
			--initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token "$token" \
			>"$dir/e$i.log" 2>&1 &
		pids+=($!)
	done
	while [ $SECONDS -lt $deadline ]; do
		if [ -n "$(leader)" ] && ctl endpoint health >/dev/null 2>&1; then
			return 0
		fi
		kill -0 "${pids[@]}" 2>/dev/null || { echo "bench-etcd: a member exited; see its log:" >&2; tail -5 "$dir"/e*.log >&2; exit 1; }
		sleep 0.5
	done
	echo "bench-etcd: no leader within 60s" >&2
	exit 1
}

# leader prints the leader's name (e1, e2 or e3), or nothing.
leader() {
	local s
	s=$(etcdctl --endpoints "$endpoints" --dial-timeout 2s --command-timeout 2s endpoint status -w json 2>/dev/null) || return 0
	jq -r '.[] | select(.Status.header.member_id == .Status.leader) | .Endpoint' <<<"$s" |
		sed -n 's/.*:2379\([123]\)$/e\1/p'
}
client_of() { echo "127.0.0.1:2379${1#e}"; }

# compact compacts the keyspace to the current revision.
compact() {
	local rev
	rev=$(ctl endpoint status -w json | jq '[.[].Status.header.revision] | max')
	ctl compact "$rev" >/dev/null 2>&1 || true
	sleep 2
}

# CPU accounting: a background sampler appends "time member_ticks busy_ticks"
# lines every 50 ms (member_ticks: utime+stime of the members; busy_ticks:
# the whole machine's user+system time from /proc/stat); cpu_between
# interpolates.
cpu_ticks() {
	local s=0 p line f
	for p in "${pids[@]}"; do
		read -r line <"/proc/$p/stat"
		f=(${line##*) })
		s=$((s + f[11] + f[12]))
	done
	read -r line </proc/stat
	f=($line)
	echo "$s $((f[1] + f[2] + f[3]))"
}
sample_cpu() { echo "$EPOCHREALTIME $(cpu_ticks)" >>"$1"; }
start_sampler() {
	: >"$1"
	sample_cpu "$1"
	(while sleep 0.05; do sample_cpu "$1"; done) &
	sampler=$!
}
stop_sampler() {
	sample_cpu "$1"
	kill "$sampler" 2>/dev/null || true
	wait "$sampler" 2>/dev/null || true
	sampler=
}
# cpu_between FILE FROM TO [COLUMN] prints the CPU seconds of the members
# (COLUMN 2, the default) or of the whole machine (3) between two times.
cpu_between() {
	awk -v a="$2" -v b="$3" -v col="${4:-2}" -v hz="$clk_tck" '
		{ t[NR] = $1; c[NR] = $col }
		function at(x,   i) {
			if (x <= t[1]) return c[1]
			for (i = 2; i <= NR; i++)
				if (t[i] >= x) return t[i] == t[i-1] ? c[i] : c[i-1] + (c[i] - c[i-1]) * (x - t[i-1]) / (t[i] - t[i-1])
			return c[NR]
		}
		END { printf "%.4f\n", (at(b) - at(a)) / hz }' "$1"
}

# wait_quiet waits, up to BENCH_QUIET_WAIT seconds (300), until the rest of
# the machine (everything but the members) has used less than
# BENCH_MAX_OTHER cores (0.2) for a whole second, so that a run starts
# undisturbed.
wait_quiet() {
	local f=$work/quiet deadline=$((SECONDS + ${BENCH_QUIET_WAIT:-300})) other
	while :; do
		: >"$f"
		sample_cpu "$f"
		sleep 1
		sample_cpu "$f"
		other=$(awk -v hz="$clk_tck" 'NR == 1 { m = $2; b = $3 } END { print ($3 - b - $2 + m) / hz }' "$f")
		awk -v o="$other" -v max="${BENCH_MAX_OTHER:-0.2}" 'BEGIN { exit !(o < max) }' && return 0
		if [ $SECONDS -ge $deadline ]; then
			echo "  (the machine is busy with other work: $other cores; running anyway)"
			return 0
		fi
		sleep 2
	done
}

# bench NAME REP ARGS... runs etcdbench ARGS --json, keeps its result as
# $out/NAME.REP.json with the server CPU (srv_cpu_s) and the client
# process's CPU (cli_cpu_s) and the rest of the machine's load during the
# measured phase (other_cores) added, and prints a one-line digest. A
# repetition that other work disturbed (other_cores above BENCH_MAX_OTHER,
# 0.2) is run again, up to BENCH_TRIES (3) times in all.
bench() {
	local try
	for try in $(seq "${BENCH_TRIES:-3}"); do
		bench_once "$@"
		[ "$2" != warmup ] || return 0
		jq -e --argjson max "${BENCH_MAX_OTHER:-0.2}" '.other_cores <= $max' "$out/$1.$2.json" >/dev/null && return 0
		[ "$try" = "${BENCH_TRIES:-3}" ] || echo "  (disturbed by other work; again)"
	done
}

bench_once() {
	local name=$1 rep=$2 samples t0 t1 el srv cli busy
	shift 2
	samples=$out/$name.$rep.cpu
	[ "$rep" = warmup ] || wait_quiet
	start_sampler "$samples"
	if ! /usr/bin/time -f '%U %S' -o "$out/$name.$rep.time" \
		"$etcdbench" "$@" --endpoints "$endpoints" --json >"$out/$name.$rep.raw" 2>"$out/$name.$rep.err"; then
		stop_sampler "$samples"
		echo "bench-etcd: $name failed:" >&2
		cat "$out/$name.$rep.err" "$out/$name.$rep.raw" >&2
		exit 1
	fi
	t1=$EPOCHREALTIME
	stop_sampler "$samples"
	el=$(jq .elapsed_seconds "$out/$name.$rep.raw")
	t0=$(awk -v a="$t1" -v b="$el" 'BEGIN { printf "%.6f", a - b }')
	srv=$(cpu_between "$samples" "$t0" "$t1")
	busy=$(cpu_between "$samples" "$t0" "$t1" 3)
	cli=$(awk '{print $1 + $2}' "$out/$name.$rep.time")
	# other_cores: what the rest of the machine used during the measured
	# phase, in cores (the client's own CPU of that phase taken out).
	jq --argjson srv "$srv" --argjson cli "$cli" --argjson busy "$busy" '. + {srv_cpu_s: $srv, cli_cpu_s: $cli,
		busy_cpu_s: $busy, other_cores: (($busy - $srv - (if .op then .cpu_per_op_us * (.ops + .errors) / 1e6 else $cli end))
		/ ([.elapsed_seconds, 0.001] | max) * 100 | round / 100)}' \
		"$out/$name.$rep.raw" >"$out/$name.$rep.json"
	rm -f "$out/$name.$rep.raw"
	if [ "$rep" != warmup ]; then
		jq -r --arg n "$name" --arg r "$rep" 'if .op then
			"\($n) #\($r): \(.ops_per_second | floor) ops/s, p50 \(.latency.p50_ms * 100 | round / 100)ms p99 \(.latency.p99_ms * 100 | round / 100)ms, errors \(.errors), server \(.srv_cpu_s * 1e6 / ([.ops + .errors, 1] | max) | floor)µs/op, other load \(.other_cores) cores"
		else
			"\($n) #\($r): delivered \(.delivered)/\(.expected), p50 \(.latency.p50_ms * 100 | round / 100)ms p99 \(.latency.p99_ms * 100 | round / 100)ms, write errors \(.write_errors), other load \(.other_cores) cores"
		end' "$out/$name.$rep.json"
	fi
}

# bench_ops NAME ARGS... compacts, warms up for 3 s, then runs REPEAT times
# with a --total of about SECONDS at the warm-up's rate.
bench_ops() {
	local name=$1 rate total r
	shift
	compact
	bench "$name" warmup "$@" --duration 3s
	rate=$(jq .ops_per_second "$out/$name.warmup.json")
	total=$(awk -v r="$rate" -v s="$seconds" 'BEGIN { t = int(r * s); print t < 1000 ? 1000 : t }')
	for r in $(seq "$repeat"); do
		bench "$name" "$r" "$@" --total "$total"
	done
}

bench_watch() {
	local name=$1 rate=$2 r
	shift 2
	compact
	for r in $(seq "$repeat"); do
		bench "$name" "$r" watch --watchers "$watchers" --rate "$rate" --total $((rate * seconds)) "$@"
	done
}

# profile takes 10 s CPU profiles of the leader and of a follower while
# etcdbench put runs with 64 clients.
profile() {
	local l f
	l=$(leader)
	for f in e1 e2 e3; do [ "$f" = "$l" ] || break; done
	echo "profiling leader $l and follower $f during etcdbench put --clients 64"
	compact
	"$etcdbench" put --endpoints "$endpoints" --clients 64 --duration 14s --json >"$out/profile-put.json" 2>/dev/null &
	local b=$!
	sleep 2
	curl -fsS -o "$out/profile-leader.pb.gz" "http://$(client_of "$l")/debug/pprof/profile?seconds=10" &
	local c1=$!
	curl -fsS -o "$out/profile-follower.pb.gz" "http://$(client_of "$f")/debug/pprof/profile?seconds=10" &
	local c2=$!
	wait "$c1" "$c2" "$b"
	jq -r '"  put during the profiles: \(.ops_per_second | floor) ops/s, p99 \(.latency.p99_ms)ms"' "$out/profile-put.json"
	echo "  profiles: $out/profile-leader.pb.gz $out/profile-follower.pb.gz (go tool pprof -top -cum FILE)"
}

# memory writes 100,000 distinct keys to a fresh cluster, waits until every
# member has taken a snapshot, and reports each member's VmRSS and VmHWM.
memory() {
	local rep=$1 dir=$work/mem$1 i n rss l
	start_cluster "$dir"
	echo "memory #$rep: writing 100000 distinct keys of 256 bytes..."
	"$etcdbench" put --endpoints "$endpoints" --sequential --key-space 100000 --clients 64 --key-prefix /mem/ --json \
		>"$out/memory-put.$rep.json"
	jq -r '"  \(.ops) writes, \(.errors) errors, \(.ops_per_second | floor) ops/s"' "$out/memory-put.$rep.json"
	echo "  waiting for a snapshot on every member (etcd takes one every 100,000 entries)..."
	for _ in $(seq 240); do
		n=0
		for i in 1 2 3; do
			compgen -G "$dir/e$i/member/snap/*.snap" >/dev/null && n=$((n + 1))
		done
		[ "$n" = 3 ] && break
		sleep 0.5
	done
	[ "$n" = 3 ] || echo "  WARNING: only $n members took a snapshot within 120 s"
	sleep 5
	l=$(leader)
	{
		printf 'member\trole\tVmRSS_MiB\tVmHWM_MiB\tRssAnon_MiB\tRssFile_MiB\tGo_HeapInuse_MiB\tdb_MiB\twal_MiB\n'
		for i in 1 2 3; do
			# /proc first: fetching the heap profile afterwards must not count
			rss=$(awk '/^VmRSS:/ { r = $2 } /^VmHWM:/ { h = $2 } /^RssAnon:/ { a = $2 } /^RssFile:/ { f = $2 }
				END { printf "%.1f\t%.1f\t%.1f\t%.1f\t", r / 1024, h / 1024, a / 1024, f / 1024 }' "/proc/${pids[$((i - 1))]}/status")
			curl -fsS -o "$out/memory-heap-e$i.$rep.txt" "http://$(client_of "e$i")/debug/pprof/heap?debug=1" || true
			curl -fsS -o "$out/memory-heap-e$i.$rep.pb.gz" "http://$(client_of "e$i")/debug/pprof/heap" || true
			printf 'e%s\t%s\t%s%.1f\t%.1f\t%.1f\n' "$i" "$([ "e$i" = "$l" ] && echo leader || echo follower)" "$rss" \
				"$(awk '/^# HeapInuse = / { print $4 / 1048576 }' "$out/memory-heap-e$i.$rep.txt" 2>/dev/null)" \
				"$(du -k "$dir/e$i/member/snap/db" | awk '{ print $1 / 1024 }')" \
				"$(du -sk "$dir/e$i/member/wal" | awk '{ print $1 / 1024 }')"
		done
	} | tee "$out/memory.$rep.tsv" | column -t
	stop_cluster
	rm -rf "$dir"
}

# stat_of NAME JQ [FORMAT] prints "median (min-max)" of JQ over NAME's repetitions.
stat_of() {
	local name=$1 expr=$2 fmt=${3:-%.1f} f
	for f in "$out/$name".[0-9]*.json; do jq -r "$expr" "$f"; done | sort -g |
		awk -v fmt="$fmt" '{ v[NR] = $1 } END {
			if (NR == 0) { print "-"; exit }
			m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
			if (NR == 1) printf fmt "\n", m
			else printf fmt " (" fmt "-" fmt ")\n", m, v[1], v[NR]
		}'
}

# table TITLE HEADER... then tab-separated rows on stdin: an aligned table.
table() {
	local title=$1
	shift
	echo
	echo "$title"
	{ (IFS=$'\t'; echo "$*"); cat; } | column -t -s $'\t'
}

summary() {
	local name rows r f role
	rows=$(for name in put-64 put-256 get-linearizable get-serializable; do
		compgen -G "$out/$name.[0-9]*.json" >/dev/null || continue
		printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" \
			"$(stat_of "$name" .ops_per_second %.0f)" \
			"$(stat_of "$name" .latency.p50_ms %.2f)" "$(stat_of "$name" .latency.p90_ms %.2f)" \
			"$(stat_of "$name" .latency.p99_ms %.2f)" "$(stat_of "$name" .latency.max_ms %.1f)" \
			"$(stat_of "$name" '.srv_cpu_s * 1e6 / (.ops + .errors)' %.0f)" \
			"$(stat_of "$name" .cpu_per_op_us %.0f)" "$(stat_of "$name" .errors %.0f)"
	done)
	[ -z "$rows" ] || table "etcd, 3 members on 127.0.0.1: median of $repeat (min-max)" \
		run ops/s p50_ms p90_ms p99_ms max_ms server_µs/op client_µs/op errors <<<"$rows"
	rows=$(for name in watch-100 watch-1000 watch-shared-100 watch-shared-1000; do
		compgen -G "$out/$name.[0-9]*.json" >/dev/null || continue
		printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" \
			"$(stat_of "$name" '100 * .delivered / .expected' %.3f)" \
			"$(stat_of "$name" .latency.p50_ms %.2f)" "$(stat_of "$name" .latency.p90_ms %.2f)" \
			"$(stat_of "$name" .latency.p99_ms %.2f)" "$(stat_of "$name" .latency.max_ms %.1f)" \
			"$(stat_of "$name" '.srv_cpu_s * 1e6 / .writes' %.0f)" \
			"$(stat_of "$name" '.srv_cpu_s * 1e6 / ([.delivered, 1] | max)' %.2f)" \
			"$(stat_of "$name" '.cli_cpu_s * 1e6 / ([.delivered, 1] | max)' %.2f)"
	done)
	[ -z "$rows" ] || table "etcd watch, $watchers watchers: median of $repeat (min-max)" \
		run delivered_% p50_ms p90_ms p99_ms max_ms server_µs/write server_µs/event client_µs/event <<<"$rows"
	if compgen -G "$out/memory.[0-9]*.tsv" >/dev/null; then
		echo
		echo "etcd memory after 100,000 keys of 256 bytes and a snapshot, each repetition on a fresh cluster"
		{
			head -1 "$(compgen -G "$out/memory.[0-9]*.tsv" | head -1)" | sed 's/^/rep\t/'
			for f in "$out"/memory.[0-9]*.tsv; do
				r=${f%.tsv}
				tail -n +2 "$f" | sed "s/^/${r##*.}\t/"
			done
		} | column -t
		for role in leader follower; do
			for f in "$out"/memory.[0-9]*.tsv; do
				awk -v role=$role '$2 == role && $3 > m { m = $3 } END { print m }' "$f"
			done | sort -g | awk -v role=$role '{ v[NR] = $1 } END {
				printf "largest VmRSS of a %s: median %.1f MiB (%.1f-%.1f) over %d repetitions\n", role, v[int((NR + 1) / 2)], v[1], v[NR], NR }'
		done
	fi
}

echo "etcd $(etcd --version | awk '/etcd Version/ { print $3 }'), $(nproc) cores; results in $out"
main_runs= mem_run=
for r in $runs; do
	if [ "$r" = memory ]; then mem_run=1; else main_runs=1; fi
done
if [ -n "$main_runs" ]; then
	start_cluster "$work/cluster"
	echo "cluster up; leader $(leader)"
fi
for r in $runs; do
	case $r in
	put-64) bench_ops put-64 put --clients 64 ;;
	put-256) bench_ops put-256 put --clients 256 ;;
	get-linearizable) bench_ops get-linearizable get --clients 64 --consistency linearizable ;;
	get-serializable) bench_ops get-serializable get --clients 64 --consistency serializable ;;
	watch-100) bench_watch watch-100 100 ;;
	watch-1000) bench_watch watch-1000 1000 ;;
	watch-shared-100) bench_watch watch-shared-100 100 --shared-stream ;;
	watch-shared-1000) bench_watch watch-shared-1000 1000 --shared-stream ;;
	profile) profile ;;
	memory) ;; # last, on a cluster of its own
	*) echo "bench-etcd: unknown run $r" >&2; exit 2 ;;
	esac
done
stop_cluster
if [ -n "$mem_run" ]; then
	for r in $(seq "$repeat"); do memory "$r"; done
fi
summary
