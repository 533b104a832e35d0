# Shared helpers of the cluster scripts (sourced, not run).
#
# Every script lays out a cluster the same way: member I (1-based) has its data
# in DIR/mI/, its log in DIR/mI.log, its pid in DIR/mI.pid, and DIR/mI.sh, a
# script that starts it in the background and writes the pid file (used by
# `start` and by `coord-bench failover` to restart a killed member). Member I
# listens on loopback at I*10000 + the product's default port, so the three
# products and a default-port development server never collide.

set -euo pipefail

usage() {
    echo "usage: $0 start|stop|status N DIR" >&2
    exit 2
}

# Port of member $1 for default port $2.
member_port() {
    echo $(($1 * 10000 + $2))
}

# Waits until 127.0.0.1:$1 accepts connections (at most $2 seconds).
wait_port() {
    local port=$1 deadline=$((SECONDS + $2))
    until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
        if ((SECONDS >= deadline)); then
            echo "nothing listens on 127.0.0.1:$port after $2 s" >&2
            return 1
        fi
        sleep 0.2
    done
}

# Writes DIR/mI.sh, which runs the given command line in the background with
# its output in DIR/mI.log and its pid in DIR/mI.pid, then runs it.
launch_member() {
    local dir=$1 i=$2
    shift 2
    {
        echo '#!/usr/bin/env bash'
        echo "# Starts member $i of the cluster in $dir (written by bench/clusters)."
        printf 'nohup'
        printf ' %q' "$@"
        printf ' >>%q 2>&1 </dev/null &\n' "$dir/m$i.log"
        printf 'echo $! >%q\n' "$dir/m$i.pid"
    } >"$dir/m$i.sh"
    chmod +x "$dir/m$i.sh"
    bash "$dir/m$i.sh"
}

# Kills (TERM, then KILL after 10 s) the members whose pid files are in DIR;
# only those processes, checked to still be alive first.
stop_members() {
    local dir=$1 pidfile pid
    for pidfile in "$dir"/m*.pid; do
        [ -e "$pidfile" ] || continue
        pid=$(cat "$pidfile")
        if kill -0 "$pid" 2>/dev/null; then
            kill -CONT "$pid" 2>/dev/null || true
            kill -TERM "$pid" 2>/dev/null || true
        fi
    done
    for pidfile in "$dir"/m*.pid; do
        [ -e "$pidfile" ] || continue
        pid=$(cat "$pidfile")
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.2
        done
        if kill -0 "$pid" 2>/dev/null; then
            kill -KILL "$pid" 2>/dev/null || true
        fi
        rm -f "$pidfile"
    done
}

# Prints each member's pid and whether it runs.
status_members() {
    local dir=$1 pidfile pid
    for pidfile in "$dir"/m*.pid; do
        [ -e "$pidfile" ] || continue
        pid=$(cat "$pidfile")
        if kill -0 "$pid" 2>/dev/null; then
            echo "$(basename "$pidfile" .pid) pid $pid running"
        else
            echo "$(basename "$pidfile" .pid) pid $pid not running"
        fi
    done
}

# Installs Debian packages when the command $1 is missing.
need() {
    local cmd=$1
    shift
    if ! command -v "$cmd" >/dev/null 2>&1; then
        echo "installing $* (no $cmd)" >&2
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
    fi
}
