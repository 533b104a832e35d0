#!/usr/bin/env bash
# Runs the whole comparison docs/benchmarks.md reports, in one go on this
# machine: 3-member clusters (every workload, watch-fanout as issue #7 sets
# it — 1,000 watchers, 500 writes/s — lock with 10 and 50 contenders, then
# leader failover), 1-member clusters
# (every workload), and the 1M-znode tree on 3 members and on 1, for coord,
# etcd and ZooKeeper. Clusters run one product at a time where they would compete for
# memory; results go to OUT (default bench-out/). First, the shared disk's
# flush latency with one and with three writers (disk.txt).
#
# Every workload runs ROUNDS times against each product (each round in a
# rotated order, the products seconds apart); `compare` reports the median
# of the rounds' ratios with their range, the table each product's median
# round.
#
# Usage: bench/run-all.sh [OUT]   (env: DURATION=10s WARMUP=2s ROUNDS=3 TREE_NODES=1000000)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
out=$(mkdir -p "${1:-bench-out}" && cd "${1:-bench-out}" && pwd)
duration=${DURATION:-10s}
warmup=${WARMUP:-2s}
rounds=${ROUNDS:-3}
tree_nodes=${TREE_NODES:-1000000}
run_id="run-$(date +%s)"
work=$(mktemp -d)
products=(coord etcd zookeeper)

stop_all() {
    for p in "${products[@]}"; do
        for n in 1 3; do
            [ -d "$work/$p-$n" ] && bash "$here/clusters/$p.sh" stop "$n" "$work/$p-$n" || true
        done
    done
}
trap 'stop_all; rm -rf "$work"' EXIT

(cd "$repo" && cargo build --release --bin coord-server)
(cd "$here" && cargo build --release --target-dir "$repo/target")
bench="$repo/target/release/coord-bench"
export COORD_SERVER_BIN="$repo/target/release/coord-server"

# The disk the clusters share, as the run found it: flush latency and stalls
# with one writer and with three (a 3-member cluster's members) at once.
for writers in 1 3; do
    "$bench" disk --writers "$writers" --duration 5s --dir "$work" 2>&1 | tee -a "$out/disk.txt"
done

for n in 3 1; do
    for p in "${products[@]}"; do bash "$here/clusters/$p.sh" start "$n" "$work/$p-$n"; done
    # Let start-up work (the JVM's JIT, first elections, sled's recovery) end
    # before the first measured run, which would otherwise pay for all three.
    # Idle time does not warm ZooKeeper's JIT: its first write round after
    # start-up runs at about half its later rate, so one unmeasured pass of
    # the write-heavy workloads comes first (results kept apart).
    sleep 20
    "$bench" suite --nodes "$n" --workloads write,create --duration "$duration" \
        --warmup "$warmup" --run-id "$run_id-warmup" --out "$out/warmup.jsonl"
    "$bench" suite --nodes "$n" --duration "$duration" --warmup "$warmup" \
        --rounds "$rounds" --run-id "$run_id" --out "$out/results.jsonl"
    if [ "$n" = 3 ]; then
        "$bench" suite --nodes 3 --workloads watch-fanout --clients 1000 --write-rate 500 \
            --duration "$duration" --warmup "$warmup" \
            --run-id "$run_id-fanout" --out "$out/results.jsonl"
        # Issue #7 sets the lock's target at 10 and at 50 contenders.
        for contenders in 10 50; do
            "$bench" suite --nodes 3 --workloads lock --clients "$contenders" \
                --duration "$duration" --warmup "$warmup" --rounds "$rounds" \
                --run-id "$run_id" --out "$out/results.jsonl"
        done
        for p in "${products[@]}"; do
            for mode in kill stop; do
                "$bench" failover --target "$p" --cluster-dir "$work/$p-3" --mode "$mode" \
                    --run-id "$run_id" --out "$out/results.jsonl"
            done
        done
    fi
    for p in "${products[@]}"; do bash "$here/clusters/$p.sh" stop "$n" "$work/$p-$n"; done
done

for n in 3 1; do
    for p in "${products[@]}"; do
        rm -rf "$work/$p-$n"
        bash "$here/clusters/$p.sh" start "$n" "$work/$p-$n"
        "$bench" tree --target "$p" --cluster-dir "$work/$p-$n" --members "$n" \
            --nodes "$tree_nodes" --out "$out/tree.jsonl"
        bash "$here/clusters/$p.sh" stop "$n" "$work/$p-$n"
    done
done

"$bench" report "$out/results.jsonl" --run-id "$run_id" --out "$out"
"$bench" compare "$out/results.jsonl" --run-id "$run_id" | tee "$out/compare.md"
echo "watch-fanout, 1,000 watchers at 500 writes/s:" | tee -a "$out/compare.md"
"$bench" compare "$out/results.jsonl" --run-id "$run_id-fanout" | tee -a "$out/compare.md"
# The 1,000-watcher fan-out has a run id of its own: its table and chart
# (watch-fanout-3n-1000c.svg) go to a directory of their own.
"$bench" report "$out/results.jsonl" --run-id "$run_id-fanout" --out "$out/fanout"
echo "results in $out"
