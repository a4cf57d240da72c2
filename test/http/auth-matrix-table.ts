/**
 * The shared part of the authorization matrix tests (test/http/auth-matrix*.test.ts): two
 * repositories seeded with an image each (`secret/app` also with a referrer, so referrers has
 * something to leak), the markers that must never reach a caller who may not pull the secret
 * one, the table of every /v2 endpoint with the action it needs, and the recorder that keeps
 * every response (status, headers, body bytes) for the no-leak check. Identities, grants and
 * the policy stay in each test file, written out by hand there.
 */
import { expect } from "bun:test";
import { OCI_MANIFEST } from "../../daemon/oci/mediatypes";
import { type TestRegistry, createTestRegistry, imageManifest, pushImage, sha256 } from "../helpers/registry";

/** A policy action. */
export type Action = "pull" | "push" | "delete";
/** The repository most identities may use. */
export const SHARED = "shared/app";
/** The repository only ci and admins may touch. */
export const SECRET = "secret/app";
/** Both repositories, each cell of the matrix is tried on. */
export const REPOS = [SHARED, SECRET] as const;

type Image = Awaited<ReturnType<typeof pushImage>>;

/** What {@link seedRepositories} pushed. */
export interface Seeded {
  images: Record<string, Image>;
  /** Names, tags, digests and bytes of the secret repository. */
  secretMarkers: string[];
}

/** Pushes the two images (and the secret one's referrer) into `root`, without authentication. */
export async function seedRepositories(root: string): Promise<Seeded> {
  await using seed = await createTestRegistry({ root });
  const images: Record<string, Image> = {};
  images[SHARED] = await pushImage(seed, SHARED, "shared-tag", "SHARED-CONTENT");
  images[SECRET] = await pushImage(seed, SECRET, "classified-tag", "SECRET-CONTENT");
  const s = images[SECRET];
  const sig = imageManifest("{}", ["SECRET-SIGNATURE"], { subject: { mediaType: OCI_MANIFEST, digest: s.digest, size: s.manifest.length } });
  await seed.call("POST", `/v2/${SECRET}/blobs/uploads/?digest=${sha256("{}")}`, { body: "{}" });
  await seed.call("POST", `/v2/${SECRET}/blobs/uploads/?digest=${sha256("SECRET-SIGNATURE")}`, { body: "SECRET-SIGNATURE" });
  expect((await seed.call("PUT", `/v2/${SECRET}/manifests/${sha256(sig)}`, { headers: { "Content-Type": OCI_MANIFEST }, body: sig })).status).toBe(201);
  const hex = (d: string) => d.slice("sha256:".length);
  const secretMarkers = ["secret", "classified-tag", "SECRET-CONTENT", "SECRET-SIGNATURE", hex(s.digest), hex(sha256(s.config)), hex(sha256(s.layer)), hex(sha256(sig))];
  return { images, secretMarkers };
}

/** One endpoint: the action it needs, and how to call it as `who` on `repo`. */
export interface Endpoint {
  name: string;
  action: Action;
  call(repo: string, who: Record<string, string>, allowed: boolean): Promise<Response>;
}

/**
 * Every /v2 endpoint that names a repository. `registry` is read at call time (the tests build
 * it in beforeAll); `admin` are credentials that may do everything, used to prepare state a
 * case changes (fresh blobs and manifests to delete, another identity's upload session).
 */
export function matrixEndpoints(registry: () => TestRegistry, images: Record<string, Image>, admin: Record<string, string>): Endpoint[] {
  let counter = 0;
  const call: TestRegistry["call"] = (...args) => registry().call(...args);
  const tagOf = (repo: string) => (repo === SECRET ? "classified-tag" : "shared-tag");

  async function freshBlob(repo: string): Promise<string> {
    const data = `fresh blob ${++counter}`;
    const res = await call("POST", `/v2/${repo}/blobs/uploads/?digest=${sha256(data)}`, { headers: admin, body: data });
    expect(res.status).toBe(201);
    return sha256(data);
  }
  async function freshManifest(repo: string): Promise<string> {
    const img = images[repo]!;
    const body = imageManifest(img.config, [img.layer], { annotations: { n: String(++counter) } });
    const res = await call("PUT", `/v2/${repo}/manifests/t${counter}`, { headers: { ...admin, "Content-Type": OCI_MANIFEST }, body });
    expect(res.status).toBe(201);
    return sha256(body);
  }
  async function openSession(repo: string, headers: Record<string, string>): Promise<string> {
    const res = await call("POST", `/v2/${repo}/blobs/uploads/`, { headers });
    expect(res.status).toBe(202);
    return res.headers.get("location")!;
  }

  return [
    { name: "GET manifest by tag", action: "pull", call: (repo, who) => call("GET", `/v2/${repo}/manifests/${tagOf(repo)}`, { headers: who }) },
    { name: "HEAD manifest by digest", action: "pull", call: (repo, who) => call("HEAD", `/v2/${repo}/manifests/${images[repo]!.digest}`, { headers: who }) },
    { name: "GET blob", action: "pull", call: (repo, who) => call("GET", `/v2/${repo}/blobs/${sha256(images[repo]!.layer)}`, { headers: who }) },
    { name: "HEAD blob", action: "pull", call: (repo, who) => call("HEAD", `/v2/${repo}/blobs/${sha256(images[repo]!.layer)}`, { headers: who }) },
    { name: "GET blob range", action: "pull", call: (repo, who) => call("GET", `/v2/${repo}/blobs/${sha256(images[repo]!.layer)}`, { headers: { ...who, Range: "bytes=0-3" } }) },
    { name: "GET tags/list", action: "pull", call: (repo, who) => call("GET", `/v2/${repo}/tags/list`, { headers: who }) },
    { name: "GET referrers", action: "pull", call: (repo, who) => call("GET", `/v2/${repo}/referrers/${images[repo]!.digest}`, { headers: who }) },
    { name: "POST upload", action: "push", call: (repo, who) => call("POST", `/v2/${repo}/blobs/uploads/`, { headers: who }) },
    {
      name: "POST monolithic upload",
      action: "push",
      call: (repo, who) => {
        const data = `mono ${++counter}`;
        return call("POST", `/v2/${repo}/blobs/uploads/?digest=${sha256(data)}`, { headers: who, body: data });
      },
    },
    {
      name: "PATCH + PUT own upload session (admin's when refused)",
      action: "push",
      call: async (repo, who, allowed) => {
        const location = await openSession(repo, allowed ? who : admin);
        const patched = await call("PATCH", location, { headers: who, body: "chunk" });
        if (!allowed) return patched;
        expect(patched.status).toBe(202);
        return call("PUT", `${location}?digest=${sha256("chunk")}`, { headers: who });
      },
    },
    { name: "GET upload status", action: "push", call: async (repo, who, allowed) => call("GET", await openSession(repo, allowed ? who : admin), { headers: who }) },
    { name: "DELETE upload session", action: "push", call: async (repo, who, allowed) => call("DELETE", await openSession(repo, allowed ? who : admin), { headers: who }) },
    {
      name: "PUT manifest",
      action: "push",
      call: (repo, who) => call("PUT", `/v2/${repo}/manifests/pushed${++counter}`, { headers: { ...who, "Content-Type": OCI_MANIFEST }, body: images[repo]!.manifest }),
    },
    {
      name: "PUT manifest moving a tag",
      action: "push",
      call: (repo, who) => {
        const img = images[repo]!;
        const body = imageManifest(img.config, [img.layer], { annotations: { moved: String(++counter) } });
        return call("PUT", `/v2/${repo}/manifests/${tagOf(repo)}`, { headers: { ...who, "Content-Type": OCI_MANIFEST }, body });
      },
    },
    { name: "DELETE manifest", action: "delete", call: async (repo, who) => call("DELETE", `/v2/${repo}/manifests/${await freshManifest(repo)}`, { headers: who }) },
    { name: "DELETE blob", action: "delete", call: async (repo, who) => call("DELETE", `/v2/${repo}/blobs/${await freshBlob(repo)}`, { headers: who }) },
  ];
}

/** Every response shown to each identity, for the no-leak check. */
export class ResponseLog {
  private readonly seen: Record<string, { label: string; text: string }[]> = {};

  /** Keeps everything `res` shows (status, headers, body as latin1, so any byte matches); consumes its body. */
  async record(identity: string, label: string, res: Response): Promise<void> {
    const body = Buffer.from(await res.arrayBuffer()).toString("latin1");
    const headers = [...res.headers.entries()].map(([k, v]) => `${k}: ${v}`).join("\n");
    (this.seen[identity] ??= []).push({ label, text: `${res.status}\n${headers}\n${body}` });
  }

  /** How many responses `identity` got. */
  count(identity: string): number {
    return this.seen[identity]?.length ?? 0;
  }

  /** Throws when any response to `identity` (those `which` accepts, by label) contains one of `markers`. */
  expectNoLeak(identity: string, markers: readonly string[], which: (label: string) => boolean = () => true): void {
    for (const { label, text } of this.seen[identity] ?? []) {
      if (!which(label)) continue;
      for (const marker of markers) {
        if (text.includes(marker)) throw new Error(`${identity}: "${marker}" appears in the response to ${label}:\n${text.slice(0, 500)}`);
      }
    }
  }
}
