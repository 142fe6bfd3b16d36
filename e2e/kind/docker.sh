#!/usr/bin/env bash
# A Docker engine for the kind suite, on a fresh machine (e2e/kind/README.md, "Docker").
#
#   bash e2e/kind/docker.sh up     # make sure an engine answers, and that privileged containers work
#   bash e2e/kind/docker.sh down   # stop the engine, only if `up` started it
#
# `up` never touches an engine that already answers `docker info`: it only runs the preflight. Otherwise it
# installs Debian's docker.io (and jq, which the runtime wrapper uses) when dockerd is missing, and starts dockerd
# with its log in ${TIDEOVER_CACHE_DIR:-~/.cache/tideover}/docker/dockerd.log.
#
# Capabilities: runc gives a --privileged container every capability the kernel knows. Where the host's bounding
# set lacks some (a VM or sandbox that dropped CAP_SYS_RESOURCE, say), runc fails with "unable to apply caps:
# operation not permitted", and kind's nodes are privileged containers. Then `up` registers a small OCI runtime,
# runc-capfix (written below), as dockerd's default runtime: it removes exactly the capabilities missing from the
# bounding set (read from /proc/self/status at each call) from what runc is asked to apply, in both places runc
# reads them: the bundle's config.json (runc create/run) and the process file of runc exec --process.
set -euo pipefail

CACHE="${TIDEOVER_CACHE_DIR:-${HOME}/.cache/tideover}"
STATE="${CACHE}/docker"
LOG="${STATE}/dockerd.log"
PIDFILE="${STATE}/dockerd.pid"
WRAPPER="${STATE}/runc-capfix"
RUNTIME_NAME="runc-capfix"
PREFLIGHT_IMAGE="tideover-preflight:1"

log() { printf '[docker] %s\n' "$*" >&2; }
die() {
  printf '[docker] error: %s\n' "$*" >&2
  exit 1
}

# The capabilities missing from this process's bounding set, by kernel name (CAP_*), one per line.
missing_capabilities() {
  local names=(CAP_CHOWN CAP_DAC_OVERRIDE CAP_DAC_READ_SEARCH CAP_FOWNER CAP_FSETID CAP_KILL CAP_SETGID CAP_SETUID
    CAP_SETPCAP CAP_LINUX_IMMUTABLE CAP_NET_BIND_SERVICE CAP_NET_BROADCAST CAP_NET_ADMIN CAP_NET_RAW CAP_IPC_LOCK
    CAP_IPC_OWNER CAP_SYS_MODULE CAP_SYS_RAWIO CAP_SYS_CHROOT CAP_SYS_PTRACE CAP_SYS_PACCT CAP_SYS_ADMIN CAP_SYS_BOOT
    CAP_SYS_NICE CAP_SYS_RESOURCE CAP_SYS_TIME CAP_SYS_TTY_CONFIG CAP_MKNOD CAP_LEASE CAP_AUDIT_WRITE
    CAP_AUDIT_CONTROL CAP_SETFCAP CAP_MAC_OVERRIDE CAP_MAC_ADMIN CAP_SYSLOG CAP_WAKE_ALARM CAP_BLOCK_SUSPEND
    CAP_AUDIT_READ CAP_PERFMON CAP_BPF CAP_CHECKPOINT_RESTORE)
  local bound last i
  bound=$((16#$(awk '/^CapBnd:/ {print $2}' /proc/self/status)))
  last=$(cat /proc/sys/kernel/cap_last_cap)
  for ((i = 0; i <= last && i < ${#names[@]}; i++)); do
    if (((bound >> i) & 1)); then continue; fi
    printf '%s\n' "${names[i]}"
  done
}

write_wrapper() {
  mkdir -p "${STATE}"
  # The wrapper re-reads the bounding set itself, so it stays right if the machine changes.
  {
    printf '#!/usr/bin/env bash\n'
    printf '# Written by tideover e2e/kind/docker.sh: runc without the capabilities missing from the bounding set.\n'
    printf 'set -euo pipefail\n'
    declare -f missing_capabilities
    cat <<'EOF'
drop="$(missing_capabilities | jq -R . | jq -cs .)"
strip() { # $1: a JSON file; $2: the jq path of its capabilities object
  [[ -f "$1" ]] || return 0
  local tmp="$1.capfix"
  jq --argjson drop "${drop}" "($2) |= (if . == null then . else with_entries(.value |= ((. // []) - \$drop)) end)" "$1" >"${tmp}"
  mv "${tmp}" "$1"
}
if [[ "${drop}" != "[]" ]]; then
  bundle="" process="" command="" args=("$@")
  for ((i = 0; i < ${#args[@]}; i++)); do
    case "${args[i]}" in
      --bundle | -b) bundle="${args[i + 1]:-}" ;;
      --bundle=*) bundle="${args[i]#--bundle=}" ;;
      --process | -p) process="${args[i + 1]:-}" ;;
      --process=*) process="${args[i]#--process=}" ;;
      create | run | exec) [[ -z "${command}" ]] && command="${args[i]}" ;;
    esac
  done
  if [[ "${command}" == create || "${command}" == run ]]; then
    strip "${bundle:-.}/config.json" .process.capabilities
  elif [[ "${command}" == exec && -n "${process}" ]]; then
    strip "${process}" .capabilities
  fi
fi
exec runc "$@"
EOF
  } >"${WRAPPER}.new"
  chmod 0755 "${WRAPPER}.new"
  mv "${WRAPPER}.new" "${WRAPPER}"
}

install_docker() {
  command -v apt-get >/dev/null || die "no Docker engine answers and this is not a Debian-like system: install Docker yourself"
  log "installing Debian's docker.io and jq (apt-get)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io jq iptables >"${STATE}/apt.log" 2>&1 \
    || { apt-get update -qq >>"${STATE}/apt.log" 2>&1 \
      && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io jq iptables >>"${STATE}/apt.log" 2>&1; } \
    || die "apt-get install docker.io failed: see ${STATE}/apt.log"
}

start_dockerd() {
  local args=(--log-level=warn --pidfile "${PIDFILE}")
  local missing
  missing="$(missing_capabilities | paste -sd, -)"
  if [[ -n "${missing}" ]]; then
    command -v jq >/dev/null || install_docker
    write_wrapper
    log "this host's capability bounding set lacks ${missing}: privileged containers would fail in runc,"
    log "so dockerd runs with the OCI runtime ${RUNTIME_NAME} (${WRAPPER}), which drops exactly those"
    args+=(--add-runtime "${RUNTIME_NAME}=${WRAPPER}" --default-runtime "${RUNTIME_NAME}")
  fi
  log "starting dockerd (log: ${LOG})"
  nohup dockerd "${args[@]}" >>"${LOG}" 2>&1 </dev/null &
  echo "$!" >"${STATE}/owned"
  local i
  for ((i = 0; i < 60; i++)); do
    docker info >/dev/null 2>&1 && return 0
    sleep 1
  done
  die "dockerd did not answer docker info within 60 s: see ${LOG}"
}

# A tiny static image for the preflight: one binary that waits (no argument) or exits 0 (any argument).
preflight_image() {
  docker image inspect "${PREFLIGHT_IMAGE}" >/dev/null 2>&1 && return 0
  command -v gcc >/dev/null || die "gcc is needed to build the preflight image"
  local dir
  dir="$(mktemp -d)"
  printf '#include <unistd.h>\nint main(int c, char **v) { (void)v; if (c > 1) return 0; for (;;) pause(); }\n' >"${dir}/w.c"
  gcc -Os -static -o "${dir}/w" "${dir}/w.c"
  tar -C "${dir}" -c w | docker import -c 'ENTRYPOINT ["/w"]' - "${PREFLIGHT_IMAGE}" >/dev/null
  rm -rf "${dir}"
}

preflight() {
  preflight_image
  docker run --rm --privileged "${PREFLIGHT_IMAGE}" ok >/dev/null 2>"${STATE}/preflight.err" \
    || die "docker run --privileged fails: $(tail -1 "${STATE}/preflight.err"). kind's nodes are privileged containers."
  local id
  id="$(docker run -d --privileged "${PREFLIGHT_IMAGE}")"
  if ! docker exec --privileged "${id}" /w ok >/dev/null 2>"${STATE}/preflight.err"; then
    docker rm -f "${id}" >/dev/null
    die "docker exec --privileged fails: $(tail -1 "${STATE}/preflight.err"). kind runs it on its nodes."
  fi
  docker rm -f "${id}" >/dev/null
  log "preflight passed: docker run --privileged and docker exec --privileged work"
}

up() {
  mkdir -p "${STATE}"
  if docker info >/dev/null 2>&1; then
    log "a Docker engine answers: using it as it is"
    # `down` stops only the dockerd this script started (its pid recorded in owned), never another engine.
    if [[ -f "${STATE}/owned" ]] && [[ "$(cat "${STATE}/owned")" != "$(cat "${PIDFILE}" 2>/dev/null)" ]]; then
      rm -f "${STATE}/owned"
    fi
  else
    command -v dockerd >/dev/null || install_docker
    start_dockerd
  fi
  preflight
}

down() {
  local pid
  pid="$(cat "${PIDFILE}" 2>/dev/null || true)"
  if [[ ! -f "${STATE}/owned" || -z "${pid}" || "$(cat "${STATE}/owned")" != "${pid}" ]]; then
    log "dockerd was not started by this script: left running"
    return 0
  fi
  log "stopping dockerd (pid ${pid})"
  kill "${pid}" 2>/dev/null || true
  local i
  for ((i = 0; i < 30; i++)); do
    kill -0 "${pid}" 2>/dev/null || break
    sleep 1
  done
  rm -f "${STATE}/owned"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  *) die "usage: docker.sh up|down" ;;
esac
