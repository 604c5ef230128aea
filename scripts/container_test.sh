#!/usr/bin/env bash
# Build the source-allo container image and run it for real: spec, then check,
# discover and a full read against the fake Allo API running on this machine.
#
# Usage: scripts/container_test.sh
#
# Environment:
#   PYTHON             Python that runs the fake Allo API (default: python3)
#   CONTAINER_ENGINE   docker or podman (default: docker if a daemon answers,
#                      else podman, installed with apt-get when missing)
#   IMAGE              tag of the image built (default: source-allo:dev)
#   DEBIAN_MIRROR, DEBIAN_SECURITY_MIRROR
#                      Debian mirrors for the stand-in base image (default:
#                      the ones apt on this machine already uses)
#   RUN_TIMEOUT        seconds allowed for each container run (default: 600)
#   VERBOSE=1          stream build logs instead of printing them on failure
#
# The real base image (docker.io/airbyte/python-connector-base, pinned by
# digest in the Dockerfile) is used when it is present or can be pulled.
# Otherwise a stand-in is built from Debian packages (mmdebstrap) and tagged
# with the base image's name; the build then gets the base name without its
# digest, which a local tag cannot satisfy. The stand-in comes from the Debian
# release whose python3 has the real base's Python minor version, recorded in
# the Dockerfile as BASE_PYTHON_VERSION (3.13: trixie). Whichever base is used,
# the test fails when its Python is not that version. Images are left in the
# engine's storage, so later runs reuse them.
#
# The script never skips: a machine that can neither reach a container engine
# nor install one (root and apt-get) fails with a message saying so.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

IMAGE=${IMAGE:-source-allo:dev}
PYTHON=${PYTHON:-python3}
RUN_TIMEOUT=${RUN_TIMEOUT:-600}
VERBOSE=${VERBOSE:-0}
STANDIN_FILE=scripts/container/Containerfile.python-standin
PODMAN_PACKAGES=(podman buildah mmdebstrap runc uidmap slirp4netns containernetworking-plugins)

# The base reference (with its digest) and the Python minor version it runs
# come from the Dockerfile itself.
BASE_REF=$(sed -n 's/^ARG BASE_IMAGE=//p' Dockerfile | head -n 1)
[[ -n $BASE_REF ]] || { echo "container_test: FAIL: no 'ARG BASE_IMAGE=' in Dockerfile" >&2; exit 1; }
BASE_TAG=${BASE_REF%@*}
BASE_PYTHON=$(sed -n 's/^ARG BASE_PYTHON_VERSION=//p' Dockerfile | head -n 1)
[[ $BASE_PYTHON =~ ^3\.[0-9]+$ ]] ||
  { echo "container_test: FAIL: no 'ARG BASE_PYTHON_VERSION=3.N' in Dockerfile (found '$BASE_PYTHON')" >&2; exit 1; }

# The Debian release whose python3 is BASE_PYTHON, for the stand-in base.
case $BASE_PYTHON in
  3.11) SUITE=bookworm ;; # Debian 12
  3.13) SUITE=trixie ;;   # Debian 13
  *) SUITE="" ;;          # no Debian release: only the real base will do
esac
DEBIAN_BASE=localhost/debian:${SUITE:-none}
STANDIN_IMAGE=localhost/python-standin:$BASE_PYTHON

command -v python3 >/dev/null || { echo "container_test: FAIL: python3 is needed on the host to check the messages" >&2; exit 1; }

# ---------------------------------------------------------------- helpers ---
TMP=$(mktemp -d "${TMPDIR:-/tmp}/source-allo-container-test.XXXXXX")
FAKE_PID=""
SCRIPT_START=$EPOCHREALTIME
TIMINGS=()
STEP_NAME=""
STEP_START=""

usecs() { local t=${1/[.,]/}; echo $((10#$t)); }
seconds_since() {
  local d=$(($(usecs "$EPOCHREALTIME") - $(usecs "$1")))
  printf '%d.%d' $((d / 1000000)) $(((d / 100000) % 10))
}
step() {
  STEP_NAME=$1
  STEP_START=$EPOCHREALTIME
  echo
  echo "==> $STEP_NAME"
}
step_done() {
  local d
  d=$(seconds_since "$STEP_START")
  TIMINGS+=("$(printf '  %-46s %7s s' "$STEP_NAME${1:+ ($1)}" "$d")")
  echo "<== $STEP_NAME: ${d} s${1:+ ($1)}"
  STEP_NAME=""
}
print_timings() {
  ((${#TIMINGS[@]})) || return 0
  echo
  echo "timings:"
  printf '%s\n' "${TIMINGS[@]}"
  printf '  %-46s %7s s\n' "total" "$(seconds_since "$SCRIPT_START")"
}
fail() {
  echo "container_test: FAIL: $*" >&2
  exit 1
}
cleanup() {
  local rc=$?
  if [[ -n $FAKE_PID ]] && kill -0 "$FAKE_PID" 2>/dev/null; then
    kill "$FAKE_PID" 2>/dev/null || true
    for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$FAKE_PID" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$FAKE_PID" 2>/dev/null || true
    wait "$FAKE_PID" 2>/dev/null || true
  fi
  rm -rf "$TMP"
  [[ -n $STEP_NAME ]] && echo "container_test: failed during step: $STEP_NAME" >&2
  print_timings
  if ((rc == 0)); then echo "container_test: OK"; else echo "container_test: FAILED (exit $rc)" >&2; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

is_root() { [[ $(id -u) == 0 ]]; }

APT_UPDATED=0
apt_install() {
  is_root && command -v apt-get >/dev/null ||
    fail "need to install $* but this is not root with apt-get; install them (or run a Docker daemon) and retry"
  if ((!APT_UPDATED)); then
    apt-get update -qq >"$TMP/apt.log" 2>&1 || { cat "$TMP/apt.log" >&2; fail "apt-get update failed"; }
    APT_UPDATED=1
  fi
  echo "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >"$TMP/apt.log" 2>&1 ||
    { tail -n 40 "$TMP/apt.log" >&2; fail "apt-get install $* failed"; }
}

# Run a command with its output in a log; show the log when it fails (or always
# with VERBOSE=1).
logged() {
  local log=$1
  shift
  if [[ $VERBOSE == 1 ]]; then
    "$@" 2>&1 | tee "$log"
    return "${PIPESTATUS[0]}"
  fi
  if ! "$@" >"$log" 2>&1; then
    echo "---- last lines of $(basename "$log") ----" >&2
    tail -n 60 "$log" >&2
    return 1
  fi
}

image_exists() { "$ENGINE" image inspect "$1" >/dev/null 2>&1; }
image_label() {
  "$ENGINE" image inspect --format "{{ index .Config.Labels \"$2\" }}" "$1" 2>/dev/null | sed 's/^<no value>$//'
}

# Run the connector image. Exit codes must be real: through podman's Docker API
# `docker run --rm` returns 0 whatever the container's exit code (podman#18889),
# so docker runs without --rm and removes the container afterwards.
# Usage: run_image STDOUT_FILE STDERR_FILE [run options and command...]
run_image() {
  local out=$1 err=$2 rc=0
  shift 2
  if [[ $ENGINE == docker ]]; then
    local name="source-allo-test-$$-$RANDOM"
    timeout --kill-after=15 "$RUN_TIMEOUT" docker run -i --name "$name" "$@" </dev/null >"$out" 2>"$err" || rc=$?
    docker rm -f "$name" >/dev/null 2>&1 || true
  else
    timeout --kill-after=15 "$RUN_TIMEOUT" podman run --rm -i "$@" </dev/null >"$out" 2>"$err" || rc=$?
  fi
  ((rc != 124)) || echo "container run timed out after ${RUN_TIMEOUT}s" >>"$err"
  return "$rc"
}
show_stderr() {
  [[ -s $1 ]] || return 0
  echo "---- container stderr (last lines) ----" >&2
  tail -n 40 "$1" >&2
}

# Print "MAIN SECURITY" Debian mirrors: from the environment, else from apt's
# own sources (one-line .list files and deb822 .sources files).
debian_mirrors() {
  python3 - <<'EOF'
import glob, os, re, sys

codenames = {"buster", "bullseye", "bookworm", "trixie", "forky", "duke", "sid",
             "oldoldstable", "oldstable", "stable", "testing", "unstable"}
entries = []  # (uri, [suites])
files = ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list")) \
    + sorted(glob.glob("/etc/apt/sources.list.d/*.sources"))
for path in files:
    try:
        text = open(path, encoding="utf-8", errors="replace").read()
    except OSError:
        continue
    if path.endswith(".sources"):
        for para in re.split(r"\n\s*\n", text):
            fields = {}
            for line in para.splitlines():
                if not line.strip() or line.lstrip().startswith("#") or line[0].isspace():
                    continue
                key, _, value = line.partition(":")
                fields[key.strip().lower()] = value.strip()
            if fields.get("enabled", "yes").lower() == "no" or "deb" not in fields.get("types", "").split():
                continue
            for uri in fields.get("uris", "").split():
                entries.append((uri, fields.get("suites", "").split()))
    else:
        for line in text.splitlines():
            m = re.match(r"\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)", line.split("#", 1)[0])
            if m:
                entries.append((m.group(1), [m.group(2)]))

main = os.environ.get("DEBIAN_MIRROR", "").rstrip("/")
security = os.environ.get("DEBIAN_SECURITY_MIRROR", "").rstrip("/")
for uri, suites in entries:
    uri = uri.rstrip("/")
    if not uri.startswith(("http://", "https://")):
        continue
    bases = {re.split(r"[-/]", s, maxsplit=1)[0] for s in suites}
    if not bases & codenames:
        continue
    if any(s.endswith("-security") or s.endswith("/updates") for s in suites):
        security = security or uri
    else:
        main = main or uri
if not main:
    sys.exit("no Debian mirror found in /etc/apt/sources.list{,.d/}; set DEBIAN_MIRROR")
print(main, security or main + "-security")
EOF
}

# ------------------------------------------------------------------ steps ---
setup_engine() {
  step "container engine"
  local how=""
  if [[ -n ${CONTAINER_ENGINE:-} ]]; then
    ENGINE=$CONTAINER_ENGINE
    how="from CONTAINER_ENGINE"
  elif command -v docker >/dev/null && timeout 20 docker info >/dev/null 2>&1; then
    ENGINE=docker
    how="a Docker daemon answers"
  elif command -v podman >/dev/null; then
    ENGINE=podman
    how="no Docker daemon; podman is installed"
  elif is_root && command -v apt-get >/dev/null; then
    apt_install "${PODMAN_PACKAGES[@]}"
    ENGINE=podman
    how="no Docker daemon; installed podman with apt-get"
  else
    fail "no container engine: no Docker daemon answers 'docker info', podman is not installed, and this is not root with apt-get to install it. Install podman (Debian: apt-get install ${PODMAN_PACKAGES[*]}) or start Docker, then retry."
  fi
  command -v "$ENGINE" >/dev/null || fail "container engine '$ENGINE' not found"

  if [[ $ENGINE == podman ]]; then
    if ! command -v runc >/dev/null && is_root && command -v apt-get >/dev/null; then
      apt_install runc
    fi
    if [[ -z ${CONTAINERS_CONF:-} ]]; then
      # Rootful podman asks for ulimits (nofile=1048576) above what a process
      # without CAP_SYS_RESOURCE may set, and conmon caps nproc at 32768; crun
      # refuses hybrid cgroups. So: runc, and ulimits within the hard limits.
      # Written to a temp file and passed with CONTAINERS_CONF: nothing under
      # /etc is touched.
      local nofile nproc
      nofile=$(ulimit -Hn)
      nproc=$(ulimit -Hu)
      [[ $nofile == unlimited || $nofile -gt 1048576 ]] && nofile=1048576
      [[ $nproc == unlimited || $nproc -gt 32768 ]] && nproc=32768
      {
        echo "[containers]"
        echo "default_ulimits = [\"nofile=$nofile:$nofile\", \"nproc=$nproc:$nproc\"]"
        echo "[engine]"
        command -v runc >/dev/null && echo 'runtime = "runc"'
        echo 'cgroup_manager = "cgroupfs"'
        echo 'events_logger = "file"'
      } >"$TMP/containers.conf"
      export CONTAINERS_CONF="$TMP/containers.conf"
    fi
  fi
  "$ENGINE" info >"$TMP/engine-info.log" 2>&1 || { cat "$TMP/engine-info.log" >&2; fail "'$ENGINE info' failed"; }
  echo "engine: $ENGINE ($how): $("$ENGINE" --version)"
  step_done "$ENGINE"
}

build_debian_base() {
  local hash=$1 mirror=$2 security=$3
  command -v mmdebstrap >/dev/null || apt_install mmdebstrap
  is_root || fail "building the stand-in base with mmdebstrap needs root"
  local hooks=() certs=()
  shopt -s nullglob
  certs=(/usr/local/share/ca-certificates/*.crt)
  shopt -u nullglob
  if ((${#certs[@]})); then
    # HTTPS may go through a proxy that signs with this machine's own CA:
    # pip inside the builds must trust it too.
    hooks=(--customize-hook="copy-in ${certs[*]} /usr/local/share/ca-certificates/"
      --customize-hook='chroot "$1" update-ca-certificates')
  fi
  echo "mmdebstrap $SUITE minbase from $mirror (+ ${#certs[@]} local CA certificate(s))"
  logged "$TMP/mmdebstrap.log" mmdebstrap --variant=minbase --include=ca-certificates "${hooks[@]}" \
    "$SUITE" "$TMP/$SUITE.tar" \
    "deb $mirror $SUITE main" "deb $mirror $SUITE-updates main" "deb $security $SUITE-security main" ||
    fail "mmdebstrap failed"
  logged "$TMP/import.log" "$ENGINE" import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
    --change 'ENV REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt' \
    --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
    --change "LABEL io.source-allo.debian-hash=$hash" \
    --change 'CMD ["/bin/bash"]' \
    "$TMP/$SUITE.tar" "$DEBIAN_BASE" || fail "$ENGINE import failed"
  rm -f "$TMP/$SUITE.tar"
}

# Sets BASE_USED (the image the connector is built on) and BUILD_ARGS.
resolve_base_image() {
  step "base image"
  BUILD_ARGS=()
  BASE_USED=$BASE_REF
  if image_exists "$BASE_REF"; then
    echo "using $BASE_REF (present locally)"
    step_done "real, cached"
    return
  fi
  if timeout 30 "$ENGINE" pull -q "$BASE_REF" >"$TMP/pull.log" 2>&1; then
    echo "pulled $BASE_REF"
    step_done "real, pulled"
    return
  fi
  echo "cannot pull $BASE_REF: $(grep -v '^Trying to pull' "$TMP/pull.log" | head -n 1 | cut -c1-300)"
  echo "using a local stand-in tagged $BASE_TAG (built from Debian packages)"
  BUILD_ARGS=(--build-arg "BASE_IMAGE=$BASE_TAG")
  BASE_USED=$BASE_TAG

  # The stand-in is rebuilt only when what it is made from changes: its
  # Containerfile, the Debian release, the mirrors or the machine's CA
  # certificates.
  local mirrors mirror security deb_hash standin_hash
  [[ -n $SUITE ]] || image_exists "$BASE_TAG" ||
    fail "cannot build a stand-in for $BASE_TAG: no Debian release known here ships Python $BASE_PYTHON (BASE_PYTHON_VERSION in the Dockerfile); make the real base image available to $ENGINE"
  mirrors=$(debian_mirrors) || fail "cannot find the Debian mirror"
  read -r mirror security <<<"$mirrors"
  deb_hash=$({
    echo "$SUITE minbase ca-certificates $mirror $security"
    cat /usr/local/share/ca-certificates/*.crt 2>/dev/null || true
  } | sha256sum | cut -c1-16)
  standin_hash=$({ echo "$deb_hash $DEBIAN_BASE"; cat "$STANDIN_FILE"; } | sha256sum | cut -c1-16)

  local current
  if image_exists "$BASE_TAG"; then
    current=$(image_label "$BASE_TAG" io.source-allo.standin-hash)
    if [[ -z $current ]]; then
      echo "$BASE_TAG exists locally and is not our stand-in: using it"
      step_done "local tag"
      return
    elif [[ $current == "$standin_hash" ]]; then
      echo "stand-in $BASE_TAG is up to date (cached)"
      step_done "stand-in, cached"
      return
    fi
    echo "stand-in $BASE_TAG is outdated: rebuilding"
  fi

  if image_exists "$DEBIAN_BASE" && [[ $(image_label "$DEBIAN_BASE" io.source-allo.debian-hash) == "$deb_hash" ]]; then
    echo "$DEBIAN_BASE is up to date (cached)"
  else
    build_debian_base "$deb_hash" "$mirror" "$security"
  fi
  [[ -n $SUITE ]] || fail "cannot build a stand-in: no Debian release known here ships Python $BASE_PYTHON"
  echo "building $STANDIN_IMAGE from $STANDIN_FILE on $DEBIAN_BASE"
  logged "$TMP/standin-build.log" "$ENGINE" build --network=host \
    --build-arg "DEBIAN_BASE=$DEBIAN_BASE" \
    --label "io.source-allo.standin-hash=$standin_hash" \
    -t "$STANDIN_IMAGE" -f "$STANDIN_FILE" scripts/container || fail "building the stand-in failed"
  "$ENGINE" tag "$STANDIN_IMAGE" "$BASE_TAG"
  step_done "stand-in, built"
}

# The base must run the Python minor version the Dockerfile records for the
# real base (a stand-in with another Python would hide what it exists to catch).
check_base_python() {
  step "base image Python"
  local found
  found=$("$ENGINE" run --rm --entrypoint python "$BASE_USED" \
    -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>"$TMP/base-python.err") ||
    { cat "$TMP/base-python.err" >&2; fail "cannot run python in $BASE_USED"; }
  echo "$BASE_USED runs Python $found; the Dockerfile records $BASE_PYTHON (BASE_PYTHON_VERSION)"
  [[ $found == "$BASE_PYTHON" || $found == "$BASE_PYTHON".* ]] ||
    fail "$BASE_USED runs Python $found, not $BASE_PYTHON as the Dockerfile records for the real base"
  step_done "Python $found"
}

build_image() {
  step "build $IMAGE"
  logged "$TMP/build.log" "$ENGINE" build --network=host "${BUILD_ARGS[@]}" -t "$IMAGE" -f Dockerfile . ||
    fail "building $IMAGE failed"
  local user
  user=$("$ENGINE" image inspect --format '{{ .Config.User }}' "$IMAGE")
  [[ $user == airbyte || $user == 1000 || $user == 1000:* ]] || fail "$IMAGE runs as '${user:-root}', not airbyte"
  echo "built $IMAGE (user: $user)"
  step_done
}

run_spec() {
  step "spec"
  run_image "$TMP/spec.out" "$TMP/spec.err" "$IMAGE" spec ||
    { show_stderr "$TMP/spec.err"; cat "$TMP/spec.out" >&2; fail "spec exited non-zero"; }
  echo "---- spec output ----"
  cat "$TMP/spec.out"
  echo "---------------------"
  python3 - "$TMP/spec.out" <<'EOF' || fail "spec output is not a valid SPEC message"
import json, sys
specs = []
for line in open(sys.argv[1], encoding="utf-8"):
    try:
        msg = json.loads(line)
    except ValueError:
        continue
    if isinstance(msg, dict) and msg.get("type") == "SPEC":
        specs.append(msg["spec"])
if len(specs) != 1:
    sys.exit(f"expected one SPEC message, got {len(specs)}")
props = specs[0].get("connectionSpecification", {}).get("properties", {})
if "api_key" not in props:
    sys.exit("connectionSpecification has no api_key property")
if props["api_key"].get("airbyte_secret") is not True:
    sys.exit("api_key is not marked airbyte_secret")
print("SPEC ok: properties " + ", ".join(sorted(props)) + "; api_key is airbyte_secret")
EOF
  step_done
}

start_fake_api() {
  step "start fake Allo API"
  SECRETS="$TMP/secrets"
  mkdir -p "$SECRETS"
  # The connector runs as uid 1000 in the container: it must be able to read
  # the mounted files (the key is the fake server's, not a real one).
  chmod 755 "$TMP" "$SECRETS"
  PYTHONUNBUFFERED=1 "$PYTHON" -m integration_tests.fake_allo_api --port 0 --print-config "$SECRETS/config.json" \
    >"$TMP/fake.out" 2>"$TMP/fake.err" &
  FAKE_PID=$!
  local i
  for ((i = 0; i < 300; i++)); do
    if [[ $(wc -l <"$TMP/fake.out") -ge 1 && -s $SECRETS/config.json ]]; then break; fi
    if ! kill -0 "$FAKE_PID" 2>/dev/null; then
      cat "$TMP/fake.out" "$TMP/fake.err" >&2
      fail "the fake Allo API exited before it was ready ($PYTHON -m integration_tests.fake_allo_api)"
    fi
    sleep 0.1
  done
  ((i < 300)) || { cat "$TMP/fake.err" >&2; fail "the fake Allo API printed no ready line in 30 s"; }
  chmod 644 "$SECRETS/config.json"
  # Every key the fake server knows, and the config's api_key: none of them may
  # show up in anything the container prints.
  python3 - "$TMP/fake.out" "$SECRETS/config.json" "$TMP/secret-values" <<'EOF' || fail "cannot read the fake API's ready line"
import json, sys
first = open(sys.argv[1], encoding="utf-8").readline()
info = json.loads(first)
config = json.load(open(sys.argv[2], encoding="utf-8"))
values = set()
def walk(v):
    if isinstance(v, str):
        values.add(v)
    elif isinstance(v, dict):
        for x in v.values():
            walk(x)
    elif isinstance(v, list):
        for x in v:
            walk(x)
walk(info.get("keys", {}))
if isinstance(config.get("api_key"), str):
    values.add(config["api_key"])
values = sorted(v for v in values if len(v) >= 6)
if not values:
    sys.exit("no API key found in the ready line nor in config.json")
with open(sys.argv[3], "w", encoding="utf-8") as f:
    f.write("\n".join(values) + "\n")
print(f"fake Allo API at {info.get('url')}; config fields: {', '.join(sorted(config))}")
EOF
  echo "fake API pid: $FAKE_PID"
  step_done
}

check_no_secret() {
  local f leaked=0
  while IFS= read -r secret; do
    [[ -n $secret ]] || continue
    for f in "$@"; do
      if grep -qF -- "$secret" "$f"; then
        echo "an API key (${#secret} chars, starts '${secret:0:3}') appears in $(basename "$f")" >&2
        leaked=1
      fi
    done
  done <"$TMP/secret-values"
  ((!leaked)) || fail "the container printed an API key"
}

run_check() {
  step "check"
  local rc=0
  run_image "$TMP/check.out" "$TMP/check.err" --network=host -v "$SECRETS:/secrets:ro" \
    "$IMAGE" check --config /secrets/config.json || rc=$?
  check_no_secret "$TMP/check.out" "$TMP/check.err"
  ((rc == 0)) || { show_stderr "$TMP/check.err"; tail -n 20 "$TMP/check.out" >&2; fail "check exited with $rc"; }
  python3 - "$TMP/check.out" <<'EOF' || { tail -n 20 "$TMP/check.out" >&2; fail "check did not succeed"; }
import json, sys
statuses = []
for line in open(sys.argv[1], encoding="utf-8"):
    try:
        msg = json.loads(line)
    except ValueError:
        continue
    if isinstance(msg, dict) and msg.get("type") == "CONNECTION_STATUS":
        statuses.append(msg["connectionStatus"])
if len(statuses) != 1:
    sys.exit(f"expected one CONNECTION_STATUS message, got {len(statuses)}")
if statuses[0].get("status") != "SUCCEEDED":
    sys.exit(f"CONNECTION_STATUS is {statuses[0]}")
print("CONNECTION_STATUS SUCCEEDED")
EOF
  step_done
}

run_discover() {
  step "discover"
  local rc=0
  run_image "$TMP/discover.out" "$TMP/discover.err" --network=host -v "$SECRETS:/secrets:ro" \
    "$IMAGE" discover --config /secrets/config.json || rc=$?
  check_no_secret "$TMP/discover.out" "$TMP/discover.err"
  ((rc == 0)) || { show_stderr "$TMP/discover.err"; tail -n 20 "$TMP/discover.out" >&2; fail "discover exited with $rc"; }
  local source=integration_tests/configured_catalog.json
  [[ -f $source ]] || source=""
  python3 - "$TMP/discover.out" "$SECRETS/catalog.json" "$source" <<'EOF' || fail "discover did not give a usable catalog"
import json, sys
catalogs = []
for line in open(sys.argv[1], encoding="utf-8"):
    try:
        msg = json.loads(line)
    except ValueError:
        continue
    if isinstance(msg, dict) and msg.get("type") == "CATALOG":
        catalogs.append(msg["catalog"])
if len(catalogs) != 1:
    sys.exit(f"expected one CATALOG message, got {len(catalogs)}")
streams = catalogs[0].get("streams", [])
if not streams:
    sys.exit("the catalog has no streams")
print(f"discovered {len(streams)} streams: " + ", ".join(s["name"] for s in streams))
if sys.argv[3]:
    configured = json.load(open(sys.argv[3], encoding="utf-8"))
    known = {s["name"] for s in streams}
    unknown = [s["stream"]["name"] for s in configured["streams"] if s["stream"]["name"] not in known]
    if unknown:
        sys.exit(f"{sys.argv[3]} names streams that discover does not: {unknown}")
    print(f"catalog for read: {sys.argv[3]} ({len(configured['streams'])} streams)")
else:
    configured = {"streams": [
        {"stream": s, "sync_mode": "full_refresh", "destination_sync_mode": "overwrite"}
        for s in streams if "full_refresh" in s.get("supported_sync_modes", ["full_refresh"])
    ]}
    print(f"catalog for read: built from discover, {len(configured['streams'])} streams, full_refresh/overwrite")
with open(sys.argv[2], "w", encoding="utf-8") as f:
    json.dump(configured, f)
EOF
  chmod 644 "$SECRETS/catalog.json"
  step_done
}

run_read() {
  step "read"
  local rc=0
  run_image "$TMP/read.out" "$TMP/read.err" --network=host -v "$SECRETS:/secrets:ro" \
    "$IMAGE" read --config /secrets/config.json --catalog /secrets/catalog.json || rc=$?
  check_no_secret "$TMP/read.out" "$TMP/read.err"
  ((rc == 0)) || { show_stderr "$TMP/read.err"; tail -n 20 "$TMP/read.out" >&2; fail "read exited with $rc"; }
  python3 - "$TMP/read.out" "$SECRETS/catalog.json" <<'EOF' || fail "read did not deliver records"
import json, sys
catalog = json.load(open(sys.argv[2], encoding="utf-8"))
counts = {s["stream"]["name"]: 0 for s in catalog["streams"]}
errors = []
for line in open(sys.argv[1], encoding="utf-8"):
    try:
        msg = json.loads(line)
    except ValueError:
        continue
    if not isinstance(msg, dict):
        continue
    if msg.get("type") == "RECORD":
        name = msg["record"]["stream"]
        counts[name] = counts.get(name, 0) + 1
    elif msg.get("type") == "TRACE" and msg.get("trace", {}).get("type") == "ERROR":
        errors.append(msg["trace"]["error"].get("message", "?"))
total = sum(counts.values())
print(f"records read in container: {total} (" + ", ".join(f"{k}: {v}" for k, v in counts.items()) + ")")
if errors:
    sys.exit("the read reported errors: " + " | ".join(errors[:5]))
if total == 0:
    sys.exit("the read delivered no records")
EOF
  step_done
}

# ------------------------------------------------------------------- main ---
setup_engine
resolve_base_image
check_base_python
build_image
run_spec
start_fake_api
run_check
run_discover
run_read
