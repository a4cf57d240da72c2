/**
 * Where everything lives under the storage root. This file owns the on-disk tree; layout
 * version 1:
 *
 *   <root>/<repo>/oci-layout              {"imageLayoutVersion":"1.0.0"}
 *   <root>/<repo>/index.json              manifests of the repo; tags are descriptors annotated
 *                                         org.opencontainers.image.ref.name, untagged manifests
 *                                         are descriptors without it
 *   <root>/<repo>/blobs/<alg>/<hex>       manifests, configs, layers (hard links into the pool)
 *   <root>/.berth/pool/<alg>/<hex>        one inode per distinct blob; st_nlink - 1 = repos holding it
 *   <root>/.berth/uploads/<id>            upload sessions in flight, one file each (removed at start-up)
 *   <root>/.berth/meta.db                 derived index (bun:sqlite), rebuilt from the layouts
 *   <root>/.berth/lock                    flock(2)ed by the one process serving the root; holds its PID
 *   <root>/.berth/quarantine/<alg>-<hex>-<ms>  bytes scrub found not to match their digest
 *   <root>/.berth/reserve                 zeros kept for writes that free space on a full disk
 *   <root>/.berth/token.key               the token service's ES256 signing key, PKCS#8 PEM, 0600
 *                                         (auth/tokenkey.ts; default of [auth.token] key_file)
 *   <root>/.berth/apikeys.json            API key store: ids, owners, labels, SHA-256 of secrets, 0600
 *                                         (auth/apikeys.ts)
 *
 * Repository names are validated against the spec's grammar (oci/names.ts) before they get
 * here, so a name can never climb out of the root or into another layout's files.
 */
import { join } from "node:path";
import type { Algorithm } from "../oci/digest";

/** Path helpers for one storage root. */
export class Paths {
  readonly internal: string;
  readonly pool: string;
  readonly uploads: string;
  readonly metaDb: string;
  readonly quarantine: string;

  constructor(readonly root: string) {
    this.internal = join(root, ".berth");
    this.pool = join(this.internal, "pool");
    this.uploads = join(this.internal, "uploads");
    this.metaDb = join(this.internal, "meta.db");
    this.quarantine = join(this.internal, "quarantine");
  }
  repo(name: string): string {
    return join(this.root, name);
  }
  ociLayout(name: string): string {
    return join(this.root, name, "oci-layout");
  }
  index(name: string): string {
    return join(this.root, name, "index.json");
  }
  blobDir(name: string, algorithm: Algorithm): string {
    return join(this.root, name, "blobs", algorithm);
  }
  blob(name: string, algorithm: Algorithm, hex: string): string {
    return join(this.root, name, "blobs", algorithm, hex);
  }
  poolDir(algorithm: Algorithm): string {
    return join(this.pool, algorithm);
  }
  poolBlob(algorithm: Algorithm, hex: string): string {
    return join(this.pool, algorithm, hex);
  }
  upload(id: string): string {
    return join(this.uploads, id);
  }
}
