#!/usr/bin/env bash
# Starts or stops an N-member ZooKeeper ensemble on loopback with its data in
# DIR. Member I: client 127.0.0.1:(I*10000+2181), quorum (I*10000+2888),
# election (I*10000+3888). forceSync=yes (ZooKeeper's default: the transaction
# log is fsynced before a write is acknowledged), as for coord and etcd.
# ZooKeeper's shipped timing defaults (tickTime 2000, initLimit 10, syncLimit 5).
# Usage: zookeeper.sh start|stop|status N DIR
source "$(dirname "$0")/common.sh"
[ $# -eq 3 ] || usage
cmd=$1 n=$2 dir=$3
ZK_HEAP=${ZK_HEAP:--Xmx1g}

write_config() {
    local i=$1 j
    mkdir -p "$dir/m$i"
    echo "$i" >"$dir/m$i/myid"
    {
        echo "tickTime=2000"
        echo "initLimit=10"
        echo "syncLimit=5"
        echo "dataDir=$dir/m$i"
        echo "clientPort=$(member_port "$i" 2181)"
        echo "clientPortAddress=127.0.0.1"
        echo "forceSync=yes"
        echo "maxClientCnxns=0"
        echo "admin.enableServer=false"
        echo "4lw.commands.whitelist=srvr,stat,ruok,mntr"
        echo "autopurge.purgeInterval=0"
        if [ "$n" -gt 1 ]; then
            for j in $(seq "$n"); do
                echo "server.$j=127.0.0.1:$(member_port "$j" 2888):$(member_port "$j" 3888)"
            done
        fi
    } >"$dir/m$i/zoo.cfg"
}

start() {
    need java zookeeper
    [ -e /usr/share/java/zookeeper.jar ] || need /nonexistent-zookeeper-jar zookeeper
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    local i
    for i in $(seq "$n"); do
        write_config "$i"
        launch_member "$dir" "$i" java "$ZK_HEAP" -Dzookeeper.log.dir="$dir" \
            -Dzookeeper.root.logger=WARN,CONSOLE -Dlog4j.configuration=file:/etc/zookeeper/conf/log4j.properties \
            -cp "/etc/zookeeper/conf:/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-log4j12.jar:/usr/share/java/log4j-1.2.jar" \
            org.apache.zookeeper.server.quorum.QuorumPeerMain "$dir/m$i/zoo.cfg"
    done
    for i in $(seq "$n"); do
        wait_port "$(member_port "$i" 2181)" 60
    done
    # Serving means a quorum: every member reports a mode.
    local ok
    for _ in $(seq 120); do
        ok=0
        for i in $(seq "$n"); do
            if (exec 3<>"/dev/tcp/127.0.0.1/$(member_port "$i" 2181)" && echo srvr >&3 && grep -q '^Mode:' <&3) 2>/dev/null; then
                ok=$((ok + 1))
            fi
        done
        if [ "$ok" -eq "$n" ]; then
            echo "zookeeper: $n member(s) up, client ports $(for i in $(seq "$n"); do printf '%s ' "$(member_port "$i" 2181)"; done)"
            return 0
        fi
        sleep 0.5
    done
    echo "zookeeper did not form a quorum; logs in $dir/m*.log" >&2
    return 1
}

case $cmd in
start) start ;;
stop) stop_members "$dir" ;;
status) status_members "$dir" ;;
*) usage ;;
esac
