#!/bin/bash
# iso.sh SANDBOX cmd...
# Runs cmd in a private mount namespace with a fresh tmpfs on /run and SANDBOX/varlib bound
# on /var/lib/containers, so skopeo/podman (as root) keep their blob-info cache and runtime
# files inside SANDBOX instead of global state that would make request patterns depend on
# history. `mount -n` keeps util-linux from writing /run/mount/utab on the real /run.
# Leaves /var/lib/containers behind as an (empty) mountpoint if it did not exist.
set -eu
S=${1:?usage: iso.sh SANDBOX cmd...}
shift
mkdir -p "$S/varlib"
exec unshare --mount --propagation private sh -c '
  S=$1; shift
  mount -n -t tmpfs tmpfs /run
  mkdir -p /var/lib/containers
  mount -n --bind "$S/varlib" /var/lib/containers
  exec "$@"' iso "$S" "$@"
