/**
 * GC and retention tell the task API how far they are (issue 13): a task started with
 * ?async=true shows repositories done out of the total (GC's pool sweep counts as one),
 * ending with done = total; in-process, the passes report every step in order.
 */
import { describe, expect, test } from "bun:test";
import type { PassProgress } from "../../daemon/lifecycle/pacer";
import type { TaskView } from "../../daemon/tasks/tasks";
import { waitFor } from "../helpers/clients";
import { startDaemon } from "../helpers/daemon";
import { createLifecycleRegistry } from "../helpers/lifecycle";
import { pushImage } from "../helpers/registry";

const REPOS = ["a", "b/c", "d"];

describe("progress of GC and retention", () => {
  test("in-process: each repository done is told, then the pool sweep; retention counts repositories", async () => {
    const policies = [{ repositories: ["**"], keepLast: 5, keepTags: [], keepWithinMs: 0, untaggedAfterMs: 0 }];
    await using r = await createLifecycleRegistry({ retention: { intervalMs: 0, dryRun: false, policies } });
    for (const repo of REPOS) await pushImage(r, repo, "v1", repo);
    const gc: PassProgress[] = [];
    await r.lifecycle.gc({ progress: (p) => gc.push({ ...p }) });
    expect(gc).toEqual([0, 1, 2, 3, 4].map((done) => ({ done, total: 4 })));
    const retention: PassProgress[] = [];
    await r.lifecycle.retention({ progress: (p) => retention.push({ ...p }) });
    expect(retention).toEqual([0, 1, 2, 3].map((done) => ({ done, total: 3 })));
  });

  test("a daemon's GC and retention tasks end with done = total (the UI's bars are determinate)", async () => {
    await using daemon = await startDaemon({ extra: `[[retention.policy]]\nrepositories = ["**"]\nkeep_last = 5\n` });
    for (const repo of REPOS) {
      const body = `blob of ${repo}`;
      const post = await fetch(`${daemon.url}/v2/${repo}/blobs/uploads/`, { method: "POST" });
      expect(post.status).toBe(202);
      const loc = new URL(post.headers.get("location")!, daemon.url);
      loc.searchParams.set("digest", `sha256:${new Bun.CryptoHasher("sha256").update(body).digest("hex")}`);
      expect((await fetch(loc, { method: "PUT", body })).status).toBe(201);
    }
    for (const [kind, total] of [["gc", REPOS.length + 1], ["retention", REPOS.length]] as const) {
      const res = await fetch(`${daemon.url}/api/v1/storage/${kind}?async=true`, { method: "POST" });
      expect(res.status).toBe(202);
      const location = res.headers.get("Location")!;
      let task = (await res.json()) as TaskView;
      await waitFor(`the ${kind} task to end`, async () => (task = (await (await fetch(daemon.url + location)).json()) as TaskView).state !== "running");
      expect(task).toMatchObject({ kind, state: "succeeded", done: total, total });
    }
  }, 30_000);
});
