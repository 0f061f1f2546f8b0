#!/usr/bin/env bash
# A Docker Engine for the docker backend's tests (tests/docker), on a machine that has none running.
#
# Installs docker.io and debootstrap when missing, starts dockerd in the background (the init script
# fails on these machines; --privileged is refused, so no nested setup either), waits until it answers,
# and gives it the base image the tests run on, tierbot-base:bookworm, made without any image
# registry: `debootstrap --variant=minbase` (Debian's archive, through the mirror apt is configured
# with) into a tarball, then `docker import`. The tarball is cached (TIERBOT_DOCKER_CACHE, default
# /var/cache/tierbot), so a rerun on the same machine skips the minute debootstrap takes.
#
# Prints the PID of the dockerd it started, or nothing when an engine was already answering: the
# caller stops that PID, and only that one, when done. Everything else goes to stderr.
set -euo pipefail

CACHE=${TIERBOT_DOCKER_CACHE:-/var/cache/tierbot}
IMAGE=tierbot-base:bookworm
PIDFILE=${TIERBOT_DOCKERD_PIDFILE:-/run/tierbot-dockerd.pid}
LOG=${TIERBOT_DOCKERD_LOG:-/tmp/tierbot-dockerd.log}

say() { echo "docker-engine: $*" >&2; }

# The mirror apt uses for bookworm (deb822 sources, then one-line ones); empty: debootstrap's default.
apt_mirror() {
    local uri=""
    if compgen -G "/etc/apt/sources.list.d/*.sources" >/dev/null; then
        uri=$(awk 'BEGIN { RS = "" }
            /(^|\n)Suites:[^\n]*[ \t]bookworm([ \t]|\n|$)/ {
                if (match($0, /(^|\n)URIs:[ \t]*[^ \t\n]+/)) {
                    s = substr($0, RSTART, RLENGTH); sub(/^\n?URIs:[ \t]*/, "", s); print s; exit
                }
            }' /etc/apt/sources.list.d/*.sources)
    fi
    if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
        uri=$(awk '$1 == "deb" { i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
            if ($(i + 1) == "bookworm") { print $i; exit } }' /etc/apt/sources.list)
    fi
    echo "$uri"
}

if ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null; then
    say "installing docker.io and debootstrap"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io debootstrap >&2
fi

started=""
if ! docker info >/dev/null 2>&1; then
    say "starting dockerd (log: $LOG)"
    # No iptables (not permitted here) and no default bridge: experiments run with network none, and
    # builds use the host's network only where a tier says so.
    dockerd --iptables=false --bridge=none --pidfile "$PIDFILE" >"$LOG" 2>&1 &
    started=$!
    for _ in $(seq 1 120); do
        docker info >/dev/null 2>&1 && break
        if ! kill -0 "$started" 2>/dev/null; then
            say "dockerd exited:"; tail -20 "$LOG" >&2; exit 1
        fi
        sleep 0.5
    done
    if ! docker info >/dev/null 2>&1; then
        say "dockerd does not answer after 60 s:"; tail -20 "$LOG" >&2; kill "$started"; exit 1
    fi
fi

if ! docker image inspect "$IMAGE" >/dev/null 2>&1; then
    if [ ! -s "$CACHE/bookworm.tar" ]; then
        root=$(mktemp -d)
        mirror=$(apt_mirror)
        say "debootstrap bookworm into $root ${mirror:+from $mirror} (about a minute)"
        # shellcheck disable=SC2086 # an empty mirror is no argument: debootstrap's default
        debootstrap --variant=minbase --include=python3,python3-venv bookworm "$root" $mirror >&2
        mkdir -p "$CACHE"
        tar -C "$root" -cf "$CACHE/bookworm.tar.partial" .
        mv "$CACHE/bookworm.tar.partial" "$CACHE/bookworm.tar"  # whole or absent: a rerun trusts it
        rm -rf "$root"
    fi
    say "importing $IMAGE from $CACHE/bookworm.tar"
    docker import "$CACHE/bookworm.tar" "$IMAGE" >/dev/null
fi

echo "$started"
