#!/usr/bin/env bash
# Starts or stops an N-member coord cluster on loopback with its data in DIR.
# Member I: client 127.0.0.1:(I*10000+2390), peer 127.0.0.1:(I*10000+2391).
# coord flushes its Raft log before acknowledging (always; no flag).
# The binary: $COORD_SERVER_BIN, else target/release/coord-server of this
# repository (built with `cargo build --release --bin coord-server` if missing).
# Extra server flags: $COORD_SERVER_FLAGS (e.g. "--tick-ms 50").
# Usage: coord.sh start|stop|status N DIR
source "$(dirname "$0")/common.sh"
[ $# -eq 3 ] || usage
cmd=$1 n=$2 dir=$3
repo=$(cd "$(dirname "$0")/../.." && pwd)

server_bin() {
    local bin=${COORD_SERVER_BIN:-$repo/target/release/coord-server}
    if [ ! -x "$bin" ]; then
        echo "building coord-server (release)" >&2
        (cd "$repo" && cargo build --release --bin coord-server >&2)
    fi
    (cd "$(dirname "$bin")" && echo "$PWD/$(basename "$bin")")
}

start() {
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    local bin peers="" i
    bin=$(server_bin)
    for i in $(seq "$n"); do
        peers+="${peers:+,}$i=127.0.0.1:$(member_port "$i" 2391)"
    done
    # shellcheck disable=SC2086 # COORD_SERVER_FLAGS is a list of flags
    for i in $(seq "$n"); do
        launch_member "$dir" "$i" "$bin" --id "$i" --data-dir "$dir/m$i" \
            --client-addr "127.0.0.1:$(member_port "$i" 2390)" \
            --peer-addr "127.0.0.1:$(member_port "$i" 2391)" \
            --peers "$peers" ${COORD_SERVER_FLAGS:-}
    done
    for i in $(seq "$n"); do
        wait_port "$(member_port "$i" 2390)" 30
    done
    echo "coord: $n member(s) up, client ports $(for i in $(seq "$n"); do printf '%s ' "$(member_port "$i" 2390)"; done)"
}

case $cmd in
start) start ;;
stop) stop_members "$dir" ;;
status) status_members "$dir" ;;
*) usage ;;
esac
