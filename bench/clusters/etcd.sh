#!/usr/bin/env bash
# Starts or stops an N-member etcd cluster on loopback with its data in DIR.
# Member I: client 127.0.0.1:(I*10000+2379), peer 127.0.0.1:(I*10000+2380).
# fsync is etcd's default (every raft batch is fsynced), as for coord.
# Usage: etcd.sh start|stop|status N DIR
source "$(dirname "$0")/common.sh"
[ $# -eq 3 ] || usage
cmd=$1 n=$2 dir=$3

start() {
    need etcd etcd-server etcd-client
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    local cluster="" i
    for i in $(seq "$n"); do
        cluster+="${cluster:+,}m$i=http://127.0.0.1:$(member_port "$i" 2380)"
    done
    for i in $(seq "$n"); do
        launch_member "$dir" "$i" etcd --name "m$i" --data-dir "$dir/m$i" \
            --listen-client-urls "http://127.0.0.1:$(member_port "$i" 2379)" \
            --advertise-client-urls "http://127.0.0.1:$(member_port "$i" 2379)" \
            --listen-peer-urls "http://127.0.0.1:$(member_port "$i" 2380)" \
            --initial-advertise-peer-urls "http://127.0.0.1:$(member_port "$i" 2380)" \
            --initial-cluster "$cluster" --initial-cluster-token coord-bench \
            --initial-cluster-state new --log-level warn
    done
    local endpoints=""
    for i in $(seq "$n"); do
        wait_port "$(member_port "$i" 2379)" 30
        endpoints+="${endpoints:+,}127.0.0.1:$(member_port "$i" 2379)"
    done
    for _ in $(seq 60); do
        if ETCDCTL_API=3 etcdctl --endpoints "$endpoints" endpoint health >/dev/null 2>&1; then
            echo "etcd: $n member(s) up, endpoints $endpoints"
            return 0
        fi
        sleep 0.5
    done
    echo "etcd did not become healthy; logs in $dir/m*.log" >&2
    return 1
}

case $cmd in
start) start ;;
stop) stop_members "$dir" ;;
status) status_members "$dir" ;;
*) usage ;;
esac
