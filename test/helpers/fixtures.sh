#!/bin/bash
# fixtures.sh OUT — builds the e2e test images locally (no network) into OUT:
#   OUT/single       OCI layout built with umoci, tag v1 (linux/amd64, one layer: /hello.txt)
#   OUT/multi        hand-written two-platform OCI layout (linux/amd64 + linux/arm64), tag v1
#   OUT/rootfs.tar   a tiny root filesystem tarball (for `podman import`)
# Timestamps are pinned, so every run produces the same digests (umoci's output included,
# as far as umoci allows). Prints "name digest" lines for the tagged manifests on stdout.
set -euo pipefail
OUT=${1:?usage: fixtures.sh OUTDIR}
mkdir -p "$OUT"
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
EPOCH=1970-01-01T00:00:00Z

# (a) single-architecture image made by umoci
S="$OUT/single"
rm -rf "$S"
umoci init --layout "$S"
umoci new --image "$S:v1"
umoci config --image "$S:v1" --created "$EPOCH" --history.created "$EPOCH" \
  --os linux --architecture amd64 --config.cmd /hello.txt --config.env FOO=bar
echo "hello from berth e2e" > "$W/hello.txt"
touch -d @0 "$W/hello.txt"
umoci insert --image "$S:v1" --history.created "$EPOCH" "$W/hello.txt" /hello.txt
umoci gc --layout "$S"
chmod -R a+rX "$S"

# (b) two-platform OCI index, hand-written so the digests are fixed
L="$OUT/multi"
rm -rf "$L"
mkdir -p "$L/blobs/sha256"
printf '{"imageLayoutVersion":"1.0.0"}' > "$L/oci-layout"
put() { # FILE -> prints "sha256:<hex> <size>" and stores FILE as a blob of the layout
  local d
  d=$(sha256sum "$1" | cut -c1-64)
  cp "$1" "$L/blobs/sha256/$d"
  echo "sha256:$d $(stat -c %s "$1")"
}
descs=()
for arch in amd64 arm64; do
  mkdir -p "$W/$arch"
  echo "hello from $arch" > "$W/$arch/arch.txt"
  tar -C "$W/$arch" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf "$W/$arch.tar" arch.txt
  gzip -n -c "$W/$arch.tar" > "$W/$arch.tar.gz"
  diffid=sha256:$(sha256sum "$W/$arch.tar" | cut -c1-64)
  read -r ld ls < <(put "$W/$arch.tar.gz")
  printf '{"architecture":"%s","os":"linux","config":{"Cmd":["/arch.txt"]},"rootfs":{"type":"layers","diff_ids":["%s"]}}' \
    "$arch" "$diffid" > "$W/$arch.cfg"
  read -r cd cs < <(put "$W/$arch.cfg")
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"%s","size":%s}]}' \
    "$cd" "$cs" "$ld" "$ls" > "$W/$arch.man"
  read -r md ms < <(put "$W/$arch.man")
  descs+=("{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"$md\",\"size\":$ms,\"platform\":{\"architecture\":\"$arch\",\"os\":\"linux\"}}")
done
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[%s,%s]}' "${descs[0]}" "${descs[1]}" > "$W/idx"
read -r id is < <(put "$W/idx")
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"v1"}}]}' \
  "$id" "$is" > "$L/index.json"

# (c) a root filesystem tarball
mkdir -p "$W/rootfs/etc"
echo "podman import fixture" > "$W/rootfs/hi.txt"
echo "berth-e2e" > "$W/rootfs/etc/hostname"
tar -C "$W/rootfs" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf "$OUT/rootfs.tar" .

echo "multi $id"
