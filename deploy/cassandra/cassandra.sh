#!/usr/bin/env bash
# Run a single Apache Cassandra 5.0 node on loopback, without Docker, for
# development and tests. See README.md in this directory.
#
#   cassandra.sh fetch     download cassandra-all + runtime jars (once, cached)
#   cassandra.sh start     fetch if needed, configure and boot a node, wait for CQL
#   cassandra.sh stop      stop the node (TERM, then KILL after a timeout)
#   cassandra.sh status    print whether the node is running (exit 0 if so, 3 if not)
#   cassandra.sh clean     stop the node and delete its data (the jar cache stays)
#   cassandra.sh nodetool  run nodetool against the node (needs JMX, the default)
#   cassandra.sh logs      print the path of the node's log file
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
POM="$SCRIPT_DIR/pom.xml"

# ---------------------------------------------------------------- settings --
NATTER_CASSANDRA_HOME=${NATTER_CASSANDRA_HOME:-$HOME/.cache/natter/cassandra}
NATTER_CASSANDRA_DIR=${NATTER_CASSANDRA_DIR:-$NATTER_CASSANDRA_HOME/node}
# Absolute paths: they end up in file:// URLs and in the JVM's working directory.
[[ $NATTER_CASSANDRA_HOME == /* ]] || NATTER_CASSANDRA_HOME=$PWD/$NATTER_CASSANDRA_HOME
[[ $NATTER_CASSANDRA_DIR == /* ]] || NATTER_CASSANDRA_DIR=$PWD/$NATTER_CASSANDRA_DIR
LIB_DIR="$NATTER_CASSANDRA_HOME/lib"

# Default version: the one in pom.xml; NATTER_CASSANDRA_VERSION overrides it.
POM_VERSION=$(sed -n 's:.*<cassandra.version>\(.*\)</cassandra.version>.*:\1:p' "$POM" | head -n1)
CASSANDRA_VERSION=${NATTER_CASSANDRA_VERSION:-$POM_VERSION}

CASSANDRA_ADDRESS=${CASSANDRA_ADDRESS:-127.0.0.1}
CASSANDRA_NATIVE_PORT=${CASSANDRA_NATIVE_PORT:-9042}
CASSANDRA_STORAGE_PORT=${CASSANDRA_STORAGE_PORT:-7000}
# JMX listens on the loopback only. 0 (or "off") disables it (nodetool then won't work).
CASSANDRA_JMX_PORT=${CASSANDRA_JMX_PORT:-7199}
[[ $CASSANDRA_JMX_PORT == off ]] && CASSANDRA_JMX_PORT=0

HEAP=${NATTER_CASSANDRA_HEAP:-1G}
# Initial heap. Cassandra mlockall()s its memory at boot when it may (as root), which
# makes the whole initial heap resident: a smaller value (e.g. 256M) cuts the RSS.
HEAP_MIN=${NATTER_CASSANDRA_HEAP_MIN:-$HEAP}
START_TIMEOUT=${NATTER_CASSANDRA_START_TIMEOUT:-180}
STOP_TIMEOUT=${NATTER_CASSANDRA_STOP_TIMEOUT:-60}
# 1 = keep fsync and system-table flushes (slower DDL, survives a machine crash).
DURABLE=${NATTER_CASSANDRA_DURABLE:-0}
EXTRA_JVM_OPTS=${NATTER_CASSANDRA_JVM_OPTS:-}
MVN=${MVN:-mvn}

CONF_DIR="$NATTER_CASSANDRA_DIR/conf"
LOG_DIR="$NATTER_CASSANDRA_DIR/logs"
PID_FILE="$NATTER_CASSANDRA_DIR/cassandra.pid"
SYSTEM_LOG="$LOG_DIR/system.log"
STDOUT_LOG="$LOG_DIR/stdout.log"
MARKER=".natter-cassandra-node"

# ----------------------------------------------------------------- helpers --
say() { printf 'cassandra: %s\n' "$*"; }
die() { printf 'cassandra: error: %s\n' "$*" >&2; exit 1; }

validate_port() { # name value
  if ! [[ $2 =~ ^[0-9]+$ ]] || (($2 > 65535)); then
    die "$1 must be a port number, got '$2'"
  fi
}

# True if something accepts TCP connections on host:port.
port_open() {
  local host=$1 port=$2
  # shellcheck disable=SC2016 # $0/$1 are expanded by the inner bash
  if command -v timeout >/dev/null 2>&1; then
    timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$host" "$port" 2>/dev/null
  else
    bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$host" "$port" 2>/dev/null
  fi
}

read_pid() {
  [[ -f $PID_FILE ]] || return 1
  local pid
  pid=$(tr -dc '0-9' <"$PID_FILE")
  [[ -n $pid ]] || return 1
  printf '%s\n' "$pid"
}

# True if $1 is a live Cassandra JVM of this instance (guards against a recycled PID
# and against other nodes on the same machine).
is_our_jvm() {
  local pid=$1 cmd
  kill -0 "$pid" 2>/dev/null || return 1
  if [[ -r /proc/$pid/cmdline ]]; then
    cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)
  else
    cmd=$(ps -ww -o args= -p "$pid" 2>/dev/null || true)
  fi
  [[ $cmd == *CassandraDaemon* && $cmd == *"-Dcassandra.config=file://$CONF_DIR/cassandra.yaml"* ]]
}

# Prints the PID of the running node, or fails.
running_pid() {
  local pid
  pid=$(read_pid) || return 1
  is_our_jvm "$pid" || return 1
  printf '%s\n' "$pid"
}

# During a boot: this run's log says the native transport is up AND the port accepts
# connections (the port alone could be another process; the log alone is too early).
cql_ready() {
  [[ -f $SYSTEM_LOG ]] && grep -q 'Starting listening for CQL clients' "$SYSTEM_LOG" &&
    port_open "$CASSANDRA_ADDRESS" "$CASSANDRA_NATIVE_PORT"
}

show_log_tail() {
  local f
  for f in "$SYSTEM_LOG" "$STDOUT_LOG"; do
    if [[ -s $f ]]; then
      printf -- '----- last 50 lines of %s -----\n' "$f" >&2
      tail -n 50 "$f" >&2
    fi
  done
}

# Picks a Java 11 or 17 runtime (what Cassandra 5.0 supports). Order:
# $NATTER_CASSANDRA_JAVA, $JAVA_HOME/bin/java, java on PATH, /usr/lib/jvm/*-17-*/bin/java.
java_major() {
  "$1" -XshowSettings:properties -version 2>&1 |
    sed -n 's/^ *java\.specification\.version = \([0-9.]*\).*/\1/p' | sed 's/^1\.//; s/\..*//' | head -n1
}
find_java() {
  local c candidates=()
  [[ -n ${NATTER_CASSANDRA_JAVA:-} ]] && candidates+=("$NATTER_CASSANDRA_JAVA")
  [[ -n ${JAVA_HOME:-} ]] && candidates+=("$JAVA_HOME/bin/java")
  command -v java >/dev/null 2>&1 && candidates+=("$(command -v java)")
  for c in /usr/lib/jvm/*-17-*/bin/java /usr/lib/jvm/*17*/bin/java /usr/lib/jvm/*-11-*/bin/java; do
    [[ -x $c ]] && candidates+=("$c")
  done
  for c in ${candidates[@]+"${candidates[@]}"}; do
    [[ -x $c ]] || continue
    case "$(java_major "$c")" in
      17 | 11) JAVA=$c; return 0 ;;
    esac
  done
  die "no Java 11 or 17 found (Cassandra 5.0 runs on those only); set NATTER_CASSANDRA_JAVA=/path/to/java"
}

# -------------------------------------------------------------------- fetch --
lib_complete() {
  [[ -f $LIB_DIR/.complete ]] && [[ $(cat "$LIB_DIR/.complete") == "$CASSANDRA_VERSION" ]] &&
    [[ -f $LIB_DIR/cassandra-all-$CASSANDRA_VERSION.jar ]]
}

do_fetch() {
  if lib_complete; then
    say "jars for Cassandra $CASSANDRA_VERSION already in $LIB_DIR"
    return 0
  fi
  mkdir -p "$NATTER_CASSANDRA_HOME"
  # Serialise concurrent fetches (parallel CI jobs sharing a cache).
  if command -v flock >/dev/null 2>&1; then
    exec 9>"$NATTER_CASSANDRA_HOME/.fetch.lock"
    flock 9
    if lib_complete; then
      say "jars for Cassandra $CASSANDRA_VERSION already in $LIB_DIR"
      exec 9>&-
      return 0
    fi
  fi
  command -v "$MVN" >/dev/null 2>&1 || die "'$MVN' not found: Maven is needed to download the Cassandra jars"
  local tmp="$NATTER_CASSANDRA_HOME/lib.tmp.$$"
  rm -rf "$tmp"
  say "fetching org.apache.cassandra:cassandra-all:$CASSANDRA_VERSION and its runtime dependencies with Maven..."
  local start=$SECONDS
  local mvn_log="$NATTER_CASSANDRA_HOME/fetch.log"
  # shellcheck disable=SC2086 # NATTER_CASSANDRA_MVN_ARGS is a list of words on purpose
  if ! "$MVN" -q -B -Dstyle.color=never -f "$POM" ${NATTER_CASSANDRA_MVN_ARGS:-} \
    -Dcassandra.version="$CASSANDRA_VERSION" \
    dependency:copy-dependencies -DoutputDirectory="$tmp" >"$mvn_log" 2>&1; then
    rm -rf "$tmp"
    sed $'s/\x1b\\[[0-9;]*m//g' "$mvn_log" | grep -v '^[[:space:]]*$' | tail -n 40 >&2 || true
    die "Maven could not download cassandra-all $CASSANDRA_VERSION (full output: $mvn_log)"
  fi
  [[ -f $tmp/cassandra-all-$CASSANDRA_VERSION.jar ]] || { rm -rf "$tmp"; die "cassandra-all-$CASSANDRA_VERSION.jar missing after download"; }
  printf '%s\n' "$CASSANDRA_VERSION" >"$tmp/.complete"
  rm -rf "$LIB_DIR"
  mv "$tmp" "$LIB_DIR"
  exec 9>&- # release the fetch lock
  say "fetched $(find "$LIB_DIR" -name '*.jar' | wc -l | tr -d ' ') jars ($(du -sh "$LIB_DIR" | cut -f1)) into $LIB_DIR in $((SECONDS - start))s"
}

# ------------------------------------------------------------------- config --
write_config() {
  mkdir -p "$CONF_DIR" "$LOG_DIR" "$NATTER_CASSANDRA_DIR"/{data,commitlog,saved_caches,hints,cdc_raw,triggers}

  cat >"$CONF_DIR/cassandra.yaml" <<EOF
# Generated by deploy/cassandra/cassandra.sh on every start: edits are lost.
# A single development/test node on $CASSANDRA_ADDRESS. Not a production config.
cluster_name: natter-dev
num_tokens: 1
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
auto_bootstrap: false
storage_compatibility_mode: CASSANDRA_4

seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "$CASSANDRA_ADDRESS:$CASSANDRA_STORAGE_PORT"
listen_address: $CASSANDRA_ADDRESS
rpc_address: $CASSANDRA_ADDRESS
storage_port: $CASSANDRA_STORAGE_PORT
start_native_transport: true
native_transport_port: $CASSANDRA_NATIVE_PORT
endpoint_snitch: SimpleSnitch
dynamic_snitch: false

data_file_directories:
  - $NATTER_CASSANDRA_DIR/data
commitlog_directory: $NATTER_CASSANDRA_DIR/commitlog
saved_caches_directory: $NATTER_CASSANDRA_DIR/saved_caches
hints_directory: $NATTER_CASSANDRA_DIR/hints
cdc_raw_directory: $NATTER_CASSANDRA_DIR/cdc_raw

commitlog_sync: periodic
commitlog_sync_period: 10000ms
commitlog_segment_size: 16MiB
commitlog_total_space: 512MiB

# Small footprint for a 2-core test machine.
memtable_heap_space: 128MiB
memtable_offheap_space: 128MiB
memtable_flush_writers: 1
concurrent_reads: 8
concurrent_writes: 8
concurrent_counter_writes: 8
concurrent_compactors: 1
compaction_throughput: 64MiB/s
file_cache_size: 64MiB
key_cache_size: 16MiB
counter_cache_size: 0MiB
prepared_statements_cache_size: 16MiB
index_summary_capacity: 8MiB

# Nothing a single throwaway node needs.
hinted_handoff_enabled: false
auto_snapshot: false
snapshot_before_compaction: false
incremental_backups: false
materialized_views_enabled: false
sasi_indexes_enabled: false
user_defined_functions_enabled: false
cdc_enabled: false
trickle_fsync: false
diagnostic_events_enabled: false

disk_failure_policy: stop
commit_failure_policy: stop
EOF

  cat >"$CONF_DIR/logback.xml" <<EOF
<!-- Generated by deploy/cassandra/cassandra.sh on every start: edits are lost. -->
<configuration scan="false">
  <appender name="SYSTEMLOG" class="ch.qos.logback.core.rolling.RollingFileAppender">
    <file>$SYSTEM_LOG</file>
    <rollingPolicy class="ch.qos.logback.core.rolling.FixedWindowRollingPolicy">
      <fileNamePattern>$LOG_DIR/system.log.%i.zip</fileNamePattern>
      <minIndex>1</minIndex>
      <maxIndex>3</maxIndex>
    </rollingPolicy>
    <triggeringPolicy class="ch.qos.logback.core.rolling.SizeBasedTriggeringPolicy">
      <maxFileSize>50MB</maxFileSize>
    </triggeringPolicy>
    <encoder>
      <pattern>%-5level [%thread] %date{ISO8601} %F:%L - %msg%n</pattern>
    </encoder>
  </appender>
  <logger name="org.apache.cassandra" level="INFO"/>
  <logger name="com.datastax" level="WARN"/>
  <logger name="io.netty" level="WARN"/>
  <logger name="net.openhft" level="WARN"/>
  <root level="INFO">
    <appender-ref ref="SYSTEMLOG"/>
  </root>
</configuration>
EOF
}

# ---------------------------------------------------------------- JVM args --
# JPMS flags Cassandra 5.0 needs on JDK 17: the list from its conf/jvm17-server.options.
JPMS_ARGS=(
  -Djdk.attach.allowAttachSelf=true
  --add-exports java.base/jdk.internal.misc=ALL-UNNAMED
  --add-exports java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED
  --add-exports java.rmi/sun.rmi.registry=ALL-UNNAMED
  --add-exports java.rmi/sun.rmi.server=ALL-UNNAMED
  --add-exports java.sql/java.sql=ALL-UNNAMED
  --add-exports java.base/java.lang.ref=ALL-UNNAMED
  --add-exports jdk.unsupported/sun.misc=ALL-UNNAMED
  --add-exports jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED
  --add-exports jdk.attach/sun.tools.attach=ALL-UNNAMED
  --add-opens java.base/java.lang.module=ALL-UNNAMED
  --add-opens java.base/jdk.internal.loader=ALL-UNNAMED
  --add-opens java.base/jdk.internal.ref=ALL-UNNAMED
  --add-opens java.base/jdk.internal.reflect=ALL-UNNAMED
  --add-opens java.base/jdk.internal.math=ALL-UNNAMED
  --add-opens java.base/jdk.internal.module=ALL-UNNAMED
  --add-opens java.base/jdk.internal.util.jar=ALL-UNNAMED
  --add-opens jdk.management/com.sun.management.internal=ALL-UNNAMED
  --add-opens java.base/sun.nio.ch=ALL-UNNAMED
  --add-opens java.base/java.io=ALL-UNNAMED
  --add-opens java.base/java.lang.reflect=ALL-UNNAMED
  --add-opens jdk.compiler/com.sun.tools.javac=ALL-UNNAMED
  --add-opens java.base/java.lang=ALL-UNNAMED
  --add-opens java.base/java.util=ALL-UNNAMED
)

build_jvm_args() {
  local jamm
  jamm=$(find "$LIB_DIR" -maxdepth 1 -name 'jamm-*.jar' | head -n1)
  [[ -n $jamm ]] || die "no jamm-*.jar in $LIB_DIR (run: $0 fetch)"

  JVM_ARGS=(
    -Xms"$HEAP_MIN" -Xmx"$HEAP"
    -XX:+UseG1GC -XX:+ParallelRefProcEnabled -XX:MaxTenuringThreshold=1
    -XX:MaxGCPauseMillis=300 -XX:InitiatingHeapOccupancyPercent=70
    -XX:+ExitOnOutOfMemoryError
    -XX:+PerfDisableSharedMem
    -XX:+UseTLAB -XX:+ResizeTLAB
    "-Xlog:gc=info:file=$LOG_DIR/gc.log:time,uptime:filecount=3,filesize=10M"
    -ea -da:net.openhft...
    -Djava.net.preferIPv4Stack=true
    -javaagent:"$jamm"

    "${JPMS_ARGS[@]}"
    # Netty, as in jvm17-server.options
    -Dio.netty.tryReflectionSetAccessible=true
    -Dio.netty.allocator.useCacheForAllThreads=true
    -Dio.netty.allocator.maxOrder=11

    # Where things go
    -Dcassandra.config="file://$CONF_DIR/cassandra.yaml"
    -Dcassandra.storagedir="$NATTER_CASSANDRA_DIR"
    -Dcassandra.logdir="$LOG_DIR"
    -Dlogback.configurationFile="file://$CONF_DIR/logback.xml"
    -Dcassandra-foreground=yes
    -Dcassandra-pidfile="$PID_FILE"

    # Fast boot of a lone seed node: no waiting for gossip/ring peers.
    -Dcassandra.skip_wait_for_gossip_to_settle=0
    -Dcassandra.ring_delay_ms=1000
    -Dcassandra.superuser_setup_delay_ms=0
    -Dcassandra.load_ring_state=false
    -Dcassandra.shutdown_announce_in_ms=0
    -Dcassandra.triggers_dir="$NATTER_CASSANDRA_DIR/triggers"

    # The Chronicle libraries (audit/full-query log) must not phone home.
    -Dchronicle.analytics.disable=true
    -Dchronicle.announcer.disable=true
  )
  if [[ $CASSANDRA_JMX_PORT != 0 ]]; then
    JVM_ARGS+=(-Dcassandra.jmx.local.port="$CASSANDRA_JMX_PORT" -Dcom.sun.management.jmxremote.authenticate=false)
  fi
  if [[ $DURABLE != 1 ]]; then
    # Test-speed trade-offs: no fsync, no flushing of system/schema tables on
    # every DDL. Data survives stop/start and a killed JVM, not a machine crash.
    JVM_ARGS+=(-Dcassandra.skip_sync=true -Dcassandra.unsafesystem=true)
  fi
  if [[ -n $EXTRA_JVM_OPTS ]]; then
    local extra
    read -r -a extra <<<"$EXTRA_JVM_OPTS"
    JVM_ARGS+=("${extra[@]}")
  fi
  JVM_ARGS+=(-cp "$LIB_DIR/*" org.apache.cassandra.service.CassandraDaemon)
}

# ------------------------------------------------------------------ start --
wait_until_ready() { # pid [ours]: on timeout, only a node we launched is killed
  local pid=$1 ours=${2:-} start=$SECONDS ticks=0
  printf 'cassandra: waiting for CQL on %s:%s (timeout %ss) ' "$CASSANDRA_ADDRESS" "$CASSANDRA_NATIVE_PORT" "$START_TIMEOUT"
  while :; do
    if cql_ready; then
      printf ' up\n'
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      printf ' died\n'
      show_log_tail
      rm -f "$PID_FILE"
      die "the Cassandra JVM (pid $pid) exited during startup; logs: $LOG_DIR"
    fi
    if ((SECONDS - start >= START_TIMEOUT)); then
      printf ' timeout\n'
      show_log_tail
      if [[ $ours == ours ]]; then
        say "stopping the node that did not come up"
        do_stop kill >/dev/null || true
      fi
      die "Cassandra did not answer CQL on $CASSANDRA_ADDRESS:$CASSANDRA_NATIVE_PORT within ${START_TIMEOUT}s; logs: $LOG_DIR"
    fi
    # Poll 4 times a second, print a dot every second.
    ticks=$((ticks + 1))
    if ((ticks % 4 == 0)); then
      printf '.'
      ((ticks % 240 == 0)) && printf ' %ss\n' "$((SECONDS - start))"
    fi
    sleep 0.25
  done
}

do_start() {
  local t0=$SECONDS pid
  validate_port CASSANDRA_NATIVE_PORT "$CASSANDRA_NATIVE_PORT"
  validate_port CASSANDRA_STORAGE_PORT "$CASSANDRA_STORAGE_PORT"
  validate_port CASSANDRA_JMX_PORT "$CASSANDRA_JMX_PORT"

  # The instance dir must be ours (marker file) or new/empty: clean deletes it.
  if [[ -d $NATTER_CASSANDRA_DIR && ! -f $NATTER_CASSANDRA_DIR/$MARKER ]] &&
    [[ -n $(ls -A "$NATTER_CASSANDRA_DIR") ]]; then
    die "$NATTER_CASSANDRA_DIR is not empty and was not made by this script; pick another NATTER_CASSANDRA_DIR"
  fi
  mkdir -p "$NATTER_CASSANDRA_DIR"
  touch "$NATTER_CASSANDRA_DIR/$MARKER"

  # Serialise concurrent starts of the same instance until the JVM's PID is recorded.
  if command -v flock >/dev/null 2>&1; then
    exec 8>"$NATTER_CASSANDRA_DIR/.start.lock"
    flock 8
  fi

  if pid=$(running_pid); then
    exec 8>&-
    if port_open "$CASSANDRA_ADDRESS" "$CASSANDRA_NATIVE_PORT"; then
      say "already running (pid $pid), CQL on $CASSANDRA_ADDRESS:$CASSANDRA_NATIVE_PORT"
      return 0
    fi
    say "a node is already starting (pid $pid); waiting for it"
    wait_until_ready "$pid"
    say "ready (pid $pid) after $((SECONDS - t0))s"
    return 0
  fi
  rm -f "$PID_FILE"

  local port
  for port in "$CASSANDRA_NATIVE_PORT" "$CASSANDRA_STORAGE_PORT" $([[ $CASSANDRA_JMX_PORT != 0 ]] && echo "$CASSANDRA_JMX_PORT"); do
    if port_open "$CASSANDRA_ADDRESS" "$port"; then
      die "port $CASSANDRA_ADDRESS:$port is already in use by another process (not the node from $PID_FILE); stop it or set CASSANDRA_NATIVE_PORT/CASSANDRA_STORAGE_PORT/CASSANDRA_JMX_PORT"
    fi
  done

  do_fetch
  find_java
  write_config
  build_jvm_args

  # Keep the previous run's log for post-mortems; readiness only looks at this run's.
  [[ -f $SYSTEM_LOG ]] && mv -f "$SYSTEM_LOG" "$SYSTEM_LOG.prev"
  [[ -f $STDOUT_LOG ]] && mv -f "$STDOUT_LOG" "$STDOUT_LOG.prev"

  say "starting Cassandra $CASSANDRA_VERSION ($("$JAVA" -version 2>&1 | head -n1)) in $NATTER_CASSANDRA_DIR"
  # The child shell writes its own PID and execs java, so the PID file holds the JVM's
  # PID whether or not setsid forks. setsid/nohup detach it from this shell's session.
  local setsid=()
  command -v setsid >/dev/null 2>&1 && setsid=(setsid)
  (
    exec 8>&- 9>&- # don't let the JVM inherit the lock files
    cd "$NATTER_CASSANDRA_DIR"
    export MALLOC_ARENA_MAX=${MALLOC_ARENA_MAX:-4}
    # shellcheck disable=SC2016 # $$/$0/$@ are expanded by the inner bash
    exec ${setsid[@]+"${setsid[@]}"} nohup bash -c 'echo $$ >"$0"; exec "$@"' "$PID_FILE" "$JAVA" "${JVM_ARGS[@]}" \
      </dev/null >>"$STDOUT_LOG" 2>&1
  ) &
  for _ in $(seq 1 50); do
    pid=$(read_pid) && break
    sleep 0.1
  done
  [[ -n ${pid:-} ]] || die "the JVM did not start (no PID in $PID_FILE); see $STDOUT_LOG"
  exec 8>&- # release the start lock
  say "pid $pid, logs in $LOG_DIR"
  wait_until_ready "$pid" ours
  say "ready: CQL on $CASSANDRA_ADDRESS:$CASSANDRA_NATIVE_PORT (pid $pid) after $((SECONDS - t0))s"
}

# ------------------------------------------------------------------- stop --
do_stop() { # [kill]: skip the graceful drain (used by clean: the data is deleted anyway)
  local pid sig=TERM
  [[ ${1:-} == kill ]] && sig=KILL
  if ! pid=$(running_pid); then
    rm -f "$PID_FILE"
    say "not running"
    return 0
  fi
  say "stopping pid $pid ($sig)"
  kill -"$sig" "$pid" 2>/dev/null || true
  local start=$SECONDS
  while kill -0 "$pid" 2>/dev/null; do
    if [[ $sig == TERM ]] && ((SECONDS - start >= STOP_TIMEOUT)); then
      say "still alive after ${STOP_TIMEOUT}s; sending KILL"
      sig=KILL
      kill -KILL "$pid" 2>/dev/null || true
    fi
    if ((SECONDS - start >= STOP_TIMEOUT + 10)); then
      die "pid $pid did not exit even after KILL"
    fi
    sleep 0.2
  done
  rm -f "$PID_FILE"
  say "stopped"
}

do_status() {
  local pid
  if pid=$(running_pid); then
    if port_open "$CASSANDRA_ADDRESS" "$CASSANDRA_NATIVE_PORT"; then
      say "running (pid $pid), CQL on $CASSANDRA_ADDRESS:$CASSANDRA_NATIVE_PORT, data in $NATTER_CASSANDRA_DIR"
    else
      say "running (pid $pid) but CQL is not answering on $CASSANDRA_ADDRESS:$CASSANDRA_NATIVE_PORT yet"
    fi
    return 0
  fi
  say "not running"
  return 3
}

do_clean() {
  do_stop kill
  if [[ -d $NATTER_CASSANDRA_DIR ]]; then
    case "$NATTER_CASSANDRA_DIR" in
      / | "$HOME" | "$NATTER_CASSANDRA_HOME" | "$LIB_DIR") die "refusing to delete $NATTER_CASSANDRA_DIR" ;;
    esac
    [[ -f $NATTER_CASSANDRA_DIR/$MARKER ]] ||
      die "refusing to delete $NATTER_CASSANDRA_DIR: it has no $MARKER file, so it was not made by this script"
    rm -rf "$NATTER_CASSANDRA_DIR"
    say "removed $NATTER_CASSANDRA_DIR (jars kept in $LIB_DIR)"
  else
    say "nothing to clean in $NATTER_CASSANDRA_DIR"
  fi
}

do_nodetool() {
  [[ $CASSANDRA_JMX_PORT != 0 ]] || die "JMX is disabled (CASSANDRA_JMX_PORT=0); nodetool needs it"
  lib_complete || die "jars not fetched yet (run: $0 fetch)"
  find_java
  local logconf="$NATTER_CASSANDRA_HOME/logback-tools.xml"
  if [[ ! -f $logconf ]]; then
    cat >"$logconf" <<'EOF'
<configuration>
  <appender name="STDERR" class="ch.qos.logback.core.ConsoleAppender">
    <target>System.err</target>
    <encoder><pattern>%-5level %msg%n</pattern></encoder>
  </appender>
  <root level="WARN"><appender-ref ref="STDERR"/></root>
</configuration>
EOF
  fi
  exec "$JAVA" -Xmx128m -Djava.net.preferIPv4Stack=true "${JPMS_ARGS[@]}" \
    -Dlogback.configurationFile="file://$logconf" \
    -cp "$LIB_DIR/*" org.apache.cassandra.tools.NodeTool -h 127.0.0.1 -p "$CASSANDRA_JMX_PORT" "$@"
}

usage() {
  sed -n '2,12s/^# \{0,1\}//p' "$0"
  exit "${1:-0}"
}

cmd=${1:-}
[[ $# -gt 0 ]] && shift
case "$cmd" in
  fetch) do_fetch ;;
  start) do_start ;;
  stop) do_stop ;;
  status) do_status ;;
  clean) do_clean ;;
  nodetool) do_nodetool "$@" ;;
  logs) echo "$SYSTEM_LOG" ;;
  -h | --help | help) usage 0 ;;
  *) usage 2 >&2 ;;
esac
