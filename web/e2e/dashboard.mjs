// Browser tests of the dashboard's job list, detail page, theme and
// accessibility, registered into run.mjs's runner (h: its helpers).
import { createRequire } from "node:module";

const AXE = createRequire(import.meta.url).resolve("axe-core");

/**
 * Runs axe-core in the page and returns its serious and critical
 * violations, each as "rule: target (summary)".
 */
async function axeSerious(page) {
  await page.addScriptTag({ path: AXE });
  const violations = await page.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ["violations"] });
    return r.violations
      .filter((v) => v.impact === "serious" || v.impact === "critical")
      .flatMap((v) => v.nodes.map((n) => `${v.id}: ${n.target.join(" ")} (${n.failureSummary?.split("\n").slice(0, 2).join(" ")})`));
  });
  return violations;
}

/**
 * Creates n reported jobs in project, 25 at a time; returns them oldest
 * first as the server orders them (created_at, then job_id): the 25 of a
 * chunk are created at once, so body(i)'s i is not their order.
 */
async function createMany(h, project, n, body = (i) => ({ name: `item ${i}` })) {
  const out = [];
  for (let i = 0; i < n; i += 25) {
    const chunk = [];
    for (let k = i; k < Math.min(n, i + 25); k++) chunk.push(h.api(h.url(), "POST", "/api/v1/jobs", { project, stages: [{ name: "work" }], ...body(k) }));
    out.push(...(await Promise.all(chunk)));
  }
  return out.sort((a, b) => a.created_at.localeCompare(b.created_at) || a.job_id.localeCompare(b.job_id));
}

/** Reports each job's state in one batch request per 500 jobs. */
async function finish(h, jobs, state) {
  for (let i = 0; i < jobs.length; i += 500) {
    const reports = jobs.slice(i, i + 500).map((j) => ({ job_id: j.job_id, state, ...(state === "failed" ? { error: "boom" } : {}) }));
    const r = await h.api(h.url(), "POST", "/api/v1/reports", { reports });
    const bad = r.results.filter((x) => x.error);
    h.expect(bad.length === 0, "every report taken, got " + JSON.stringify(bad[0]));
  }
}

const shown = (page) => page.locator("[data-shown]").getAttribute("data-shown").then(Number);

export function dashboardTests(h) {
  const { test, expect, waitFor } = h;

  test("job list after a server restart: 250 jobs as windowed rows; load more, filter by state, search, bulk delete with confirmation", async () => {
    const project = "e2e-list";
    const jobs = await createMany(h, project, 250, (i) => ({ name: `item ${i}`, tags: [i % 2 ? "odd" : "even"] }));
    // Every tenth fails, the rest succeed: all finished, so the project
    // channel replays only the newest 50 and the older ones need pages.
    await finish(h, jobs.filter((_, i) => i % 10 === 0), "failed");
    await finish(h, jobs.filter((_, i) => i % 10 !== 0), "succeeded");
    // Everything below comes from the durable record. (Also: no other tab
    // is open, whose shared connection would hand this one every job it heard of.)
    await h.restartServer();
    const page = await h.newPage();
    await page.goto(h.url() + "/#/p/" + project);
    await page.locator("ol.rows").waitFor({ timeout: 10_000 });
    // The first page (100) and the channel's replay of the 50 most recently finished.
    const more = page.getByRole("button", { name: "Load older jobs" });
    await more.waitFor({ timeout: 10_000 });
    const first = await shown(page);
    expect(first >= 100 && first < 250, "the first page, got " + first);
    expect((await page.locator("li.row").count()) < 50, "only the rows near the viewport in the DOM");
    // Load the rest; at the bottom the last rows are rendered, still few.
    for (let i = 0; i < 2 && (await more.count()) > 0; i++) {
      const before = await shown(page);
      await more.click();
      await waitFor(async () => (await shown(page)) > before, "more jobs after load more");
    }
    await waitFor(async () => (await shown(page)) === 250 && (await more.count()) === 0, "all 250 jobs, and no more pages");
    await page.evaluate(() => window.scrollTo(0, document.body.scrollHeight));
    await page.locator('li.row[aria-posinset="250"]').waitFor({ timeout: 5_000 });
    expect((await page.locator('li.row[aria-posinset="250"]').textContent()).match(new RegExp(`\\b${jobs[0].name}\\b`)) !== null, "the oldest job last, " + jobs[0].name);
    expect((await page.locator("li.row").count()) < 50, "still only the rows near the viewport");
    await page.evaluate(() => window.scrollTo(0, 0));

    // The state filter goes to the server: 25 failed jobs, as cards.
    await page.getByRole("group", { name: "State" }).getByRole("button", { name: /^failed/ }).click();
    await waitFor(async () => (await shown(page)) === 25, "25 failed jobs");
    expect((await page.locator("article.job").count()) === 25, "cards under 100 jobs");
    await page.getByLabel("Search by id or name").fill(jobs[240].name); // a failed one (every tenth of jobs, oldest first)
    await waitFor(async () => (await shown(page)) === 1, "one job for the search");
    await page.getByLabel("Search by id or name").fill(jobs[30].job_id);
    await waitFor(async () => (await shown(page)) === 1, "one job for its full id");
    await page.getByLabel("Search by id or name").fill("");
    await waitFor(async () => (await shown(page)) === 25, "all failed again");
    // The filter is in the address: a reload (or a shared link) shows the same list.
    expect(page.url().endsWith(`#/p/${project}?state=failed`), "the filter in the address, got " + page.url());
    await page.reload();
    await waitFor(async () => (await shown(page)) === 25, "the 25 failed jobs after a reload");
    expect((await page.getByRole("button", { name: /^failed/ }).getAttribute("aria-pressed")) === "true", "the failed toggle pressed");

    // Bulk delete asks first; "Keep" keeps them.
    await page.getByLabel("Select all 25").check();
    const bulk = page.getByRole("region", { name: "Selected jobs" });
    await bulk.getByRole("button", { name: "Delete 25" }).click();
    const dialog = page.getByRole("dialog");
    await dialog.waitFor({ timeout: 5_000 });
    expect((await dialog.textContent()).includes("Delete 25 finished jobs?"), "the question");
    await dialog.getByRole("button", { name: "Keep" }).click();
    expect((await h.api(h.url(), "GET", `/api/v1/jobs?project=${project}&state=failed&limit=100`)).jobs.length === 25, "nothing deleted on Keep");
    await bulk.getByRole("button", { name: "Delete 25" }).click();
    await dialog.getByRole("button", { name: "Delete 25" }).click();
    await waitFor(async () => (await shown(page)) === 0, "the deleted jobs to leave the list");
    const left = await h.api(h.url(), "GET", `/api/v1/jobs?project=${project}&state=failed&limit=100`);
    expect(left.jobs.length === 0, "the failed jobs deleted on the server, left " + left.jobs.length);
    await page.close();
  });

  test("job detail: metadata and result as key/values, copy the watch command, cancel, then delete with confirmation", async () => {
    const project = "e2e-actions";
    const done = await h.api(h.url(), "POST", "/api/v1/jobs", {
      project,
      name: "render",
      stages: [{ name: "work" }],
      metadata: { customer: "acme", input: "https://example.org/in.mov" },
    });
    await h.report(done.job_id, { state: "succeeded", result: { video: "https://example.org/out.mp4", frames: 1800 } });
    const running = await h.createReported(project);
    await h.report(running.job_id, { stage: "encode", progress: 0.3 });
    await h.context().grantPermissions(["clipboard-read", "clipboard-write"], { origin: h.url() });
    const page = await h.newPage();

    await page.goto(h.url() + "/#/jobs/" + done.job_id);
    const detail = page.locator(`section.detail[data-job-id="${done.job_id}"]`);
    await detail.waitFor({ timeout: 10_000 });
    const link = detail.getByRole("link", { name: "https://example.org/out.mp4" });
    expect((await link.getAttribute("href")) === "https://example.org/out.mp4", "the result's URL as a link");
    expect((await detail.locator('dl[aria-label="Metadata"]').textContent()).includes("acme"), "the metadata");
    const cmd = `progressd watch ${done.job_id} --server ${h.url()}`;
    expect((await detail.locator(".actions__cmd code").textContent()) === cmd, "the watch command");
    await detail.getByRole("button", { name: "Copy command to watch this job in a terminal" }).click();
    await waitFor(async () => (await page.evaluate(() => navigator.clipboard.readText())) === cmd, "the command on the clipboard");
    expect((await detail.getByRole("button", { name: "Cancel job" }).count()) === 0, "no cancel for a finished job");

    await page.goto(h.url() + "/#/jobs/" + running.job_id);
    const live = page.locator(`section.detail[data-job-id="${running.job_id}"]`);
    await live.waitFor({ timeout: 10_000 });
    expect((await live.getByRole("button", { name: "Delete job" }).count()) === 0, "no delete while it runs");
    await live.getByRole("button", { name: "Cancel job" }).click();
    await waitFor(async () => (await live.getAttribute("data-state")) === "canceled", "the job canceled");
    await live.getByRole("button", { name: "Delete job" }).click();
    await page.getByRole("dialog").getByRole("button", { name: "Delete job" }).click();
    await page.waitForURL((u) => u.hash === "#/p/" + project, { timeout: 10_000 });
    const gone = await h.api(h.url(), "GET", `/api/v1/jobs/${running.job_id}`).catch((e) => e);
    expect(gone.status === 404, "the job deleted on the server, got " + (gone.status ?? JSON.stringify(gone)));
    await page.locator(`article.job[data-job-id="${done.job_id}"]`).waitFor({ timeout: 10_000 });
    expect((await page.locator(`[data-job-id="${running.job_id}"]`).count()) === 0, "the deleted job not listed");
    await page.close();
  });

  test("job detail: the log panel shows the kept lines, then live ones, follows the tail, pauses when scrolled up", async () => {
    const job = await h.createReported("e2e-logs");
    await h.report(job.job_id, { stage: "fetch", progress: 0.2 });
    const append = (from, n) =>
      h.api(h.url(), "POST", `/api/v1/jobs/${job.job_id}/logs`, { lines: Array.from({ length: n }, (_, i) => `line ${from + i}`) });
    await append(1, 200);
    const page = await h.newPage();
    await page.goto(h.url() + "/#/jobs/" + job.job_id);
    const box = page.getByRole("log", { name: "Log lines" });
    const lastN = () => box.locator(".logline").last().getAttribute("data-n").then(Number);
    await waitFor(async () => (await box.locator(".logline").count()) === 200, "the 200 kept lines");
    const atBottom = () => box.evaluate((el) => el.scrollHeight - el.scrollTop - el.clientHeight < 8);
    await waitFor(atBottom, "the panel at its newest line");
    await append(201, 50);
    await waitFor(async () => (await lastN()) === 250 && (await atBottom()), "live lines, followed");
    // Scrolled up: it stops following, and says so.
    await box.evaluate((el) => (el.scrollTop = 0));
    await page.getByRole("button", { name: "Follow" }).waitFor({ timeout: 5_000 });
    await append(251, 50);
    await waitFor(async () => (await lastN()) === 300, "the new lines in the panel");
    expect((await box.evaluate((el) => el.scrollTop)) === 0, "the reader's place kept while paused");
    await page.getByRole("button", { name: "Follow" }).click();
    await waitFor(atBottom, "back at the newest line on Follow");
    // 1,200 lines: the newest 1,000 are held, in order.
    await append(301, 900);
    await waitFor(async () => (await lastN()) === 1200, "line 1200");
    const count = await box.locator(".logline").count();
    expect(count === 1000, "the newest 1,000 lines held, got " + count);
    expect((await box.locator(".logline").first().getAttribute("data-n")) === "201", "from line 201");
    await h.report(job.job_id, { state: "succeeded" });
    await waitFor(async () => (await page.getByRole("button", { name: /Pause|Follow/ }).count()) === 0, "no Pause once the job finished");
    await page.close();
  });

  test("stalled: a running job silent past stall_after_seconds gets a badge and a warning, gone with its next report", async () => {
    const project = "e2e-stall";
    const job = await h.api(h.url(), "POST", "/api/v1/jobs", { project, name: "quiet worker", stages: [{ name: "work" }], stall_after_seconds: 1 });
    await h.report(job.job_id, { progress: 0.2 });
    const page = await h.newPage();
    await page.goto(h.url() + "/#/p/" + project);
    const card = page.locator(`article.job[data-job-id="${job.job_id}"]`);
    await card.locator(".badge--stalled").waitFor({ timeout: 15_000 });
    await card.locator("a.job__open").click();
    const detail = page.locator(`section.detail[data-job-id="${job.job_id}"]`);
    await detail.locator(".warning", { hasText: "Stalled: no report since" }).waitFor({ timeout: 10_000 });
    await h.report(job.job_id, { progress: 0.5 });
    await waitFor(async () => (await detail.locator(".warning, .badge--stalled").count()) === 0, "the warning gone after a report");
    await page.close();
  });

  test("sidebar: projects from the server, found by a search", async () => {
    for (let i = 0; i < 10; i++) await h.createReported(`e2e-find-${i}`, [{ name: "work" }]);
    const page = await h.newPage();
    await page.goto(h.url() + "/#/p/e2e-find-0");
    const nav = page.getByRole("navigation", { name: "Projects" });
    await nav.getByRole("link", { name: /e2e-find-9/ }).waitFor({ timeout: 10_000 });
    await nav.getByLabel("Find a project").fill("find-7");
    const names = async () => (await nav.locator(".project__name").allTextContents()).sort();
    await waitFor(async () => JSON.stringify(await names()) === JSON.stringify(["e2e-find-0", "e2e-find-7"]), "the match and the open project");
    await nav.getByRole("link", { name: /e2e-find-7/ }).click();
    await page.locator("#project-title", { hasText: "e2e-find-7" }).waitFor({ timeout: 10_000 });
    await page.close();
  });

  test("owner filter: an operator narrows the list to one owner's jobs, on the server, in the address", async () => {
    const project = "e2e-owner";
    const by = (owner, n) => createMany(h, project, n, (i) => ({ name: `${owner} ${i}`, owner }));
    const alice = await by("alice", 3);
    const bob = await by("bob", 2);
    await h.createReported(project, [{ name: "work" }]); // the operator's own ("local")
    const page = await h.newPage();
    const asked = [];
    page.on("request", (r) => r.url().includes("/api/v1/jobs?") && asked.push(new URL(r.url()).searchParams.get("owner")));
    await page.goto(h.url() + "/#/p/" + project);
    await waitFor(async () => (await shown(page)) === 6, "six jobs of three owners");
    const field = page.getByLabel("Owner", { exact: true });
    await field.fill("has space");
    await field.press("Enter");
    expect((await field.getAttribute("aria-invalid")) === "true", "an owner the server would refuse is marked");
    expect(!page.url().includes("owner="), "and not applied, got " + page.url());
    await field.fill("bob");
    await field.press("Enter");
    await waitFor(async () => (await shown(page)) === 2, "bob's two jobs");
    const ids = await page.locator("article.job").evaluateAll((els) => els.map((e) => e.dataset.jobId).sort());
    expect(JSON.stringify(ids) === JSON.stringify(bob.map((j) => j.job_id).sort()), "bob's jobs, got " + ids);
    expect(asked.includes("bob"), "the server asked for bob's jobs (?owner=bob), asked " + JSON.stringify(asked));
    expect(page.url().endsWith(`#/p/${project}?owner=bob`), "the owner in the address, got " + page.url());
    await page.reload();
    await waitFor(async () => (await shown(page)) === 2, "bob's two jobs after a reload");
    expect((await page.getByLabel("Owner", { exact: true }).inputValue()) === "bob", "the field says bob after a reload");
    // Bulk cancel (no confirmation: a canceled job stays, with its history).
    await page.getByLabel("Select all 2").check();
    await page.getByRole("region", { name: "Selected jobs" }).getByRole("button", { name: "Cancel 2" }).click();
    await waitFor(async () => (await page.locator('article.job[data-state="canceled"]').count()) === 2, "bob's two jobs canceled");
    for (const j of bob) expect((await h.api(h.url(), "GET", `/api/v1/jobs/${j.job_id}`)).state === "canceled", "canceled on the server");
    // With a state filter too, and back to everyone.
    await h.report(alice[0].job_id, { state: "failed", error: "x" });
    await page.getByLabel("Owner", { exact: true }).fill("alice");
    await page.getByLabel("Owner", { exact: true }).press("Enter");
    await waitFor(async () => (await shown(page)) === 3, "alice's three jobs");
    await page.getByRole("group", { name: "State" }).getByRole("button", { name: /^failed/ }).click();
    await waitFor(async () => (await shown(page)) === 1, "alice's failed job");
    expect(page.url().endsWith(`#/p/${project}?state=failed&owner=alice`), "both in the address, got " + page.url());
    await page.getByRole("group", { name: "State" }).getByRole("button", { name: "all" }).click();
    await page.getByLabel("Owner", { exact: true }).fill("");
    await page.getByLabel("Owner", { exact: true }).press("Enter");
    await waitFor(async () => (await shown(page)) === 6, "every owner's jobs again");
    await page.close();
  });

  test("keyboard: Tab reaches the list's controls, Enter opens a job, Space selects, Escape answers no", async () => {
    const project = "e2e-keys";
    const jobs = await createMany(h, project, 3, (i) => ({ name: `key ${i}` }));
    await finish(h, jobs, "succeeded");
    const page = await h.newPage();
    await page.goto(h.url() + "/#/p/" + project);
    await waitFor(async () => (await shown(page)) === 3, "three jobs");
    // What has the focus: its label, else its text.
    const focused = () =>
      page.evaluate(() => {
        const e = document.activeElement;
        if (!e || e === document.body) return "";
        const label = e.getAttribute("aria-label") || (e.id && document.querySelector(`label[for="${e.id}"]`)?.textContent) || e.closest("label")?.textContent;
        return (label || e.textContent || e.getAttribute("placeholder") || e.tagName).trim().replace(/\s+/g, " ");
      });
    const reached = [];
    const tabTo = async (want) => {
      for (let i = 0; i < 80; i++) {
        await page.keyboard.press("Tab");
        const f = await focused();
        reached.push(f);
        if (want(f)) return f;
      }
      throw new Error("Tab never reached it; reached: " + JSON.stringify(reached));
    };
    await tabTo((f) => f.startsWith("Search by id or name"));
    for (const want of ["theme", "Open a project", "failed", "Tag", "Owner"]) {
      expect(reached.some((f) => f.includes(want)), `Tab reaches "${want}", reached ${JSON.stringify(reached)}`);
    }
    await tabTo((f) => f === "key 2");
    await page.keyboard.press("Enter");
    await page.waitForURL((u) => u.hash === "#/jobs/" + jobs.find((j) => j.name === "key 2").job_id, { timeout: 10_000 });
    await page.goBack();
    await waitFor(async () => (await shown(page)) === 3, "the list again");
    await tabTo((f) => f.startsWith("Select all"));
    await page.keyboard.press("Space");
    await tabTo((f) => f === "Delete 3");
    await page.keyboard.press("Enter");
    const dialog = page.getByRole("dialog");
    await dialog.waitFor({ timeout: 5_000 });
    expect((await focused()) === "Keep", "the focus on Keep in the question, got " + (await focused()));
    await page.keyboard.press("Escape");
    await dialog.waitFor({ state: "detached", timeout: 5_000 });
    expect((await h.api(h.url(), "GET", `/api/v1/jobs?project=${project}`)).jobs.length === 3, "nothing deleted on Escape");
    await page.close();
  });

  test("sidebar: more than 200 projects, paged from the server; the search looks further on request; counts kept live", async () => {
    await h.freshServer(); // exactly these projects
    const N = 230;
    const name = (i) => `e2e-page-${String(i).padStart(3, "0")}`;
    for (let i = 0; i < N; i += 25) {
      await Promise.all(Array.from({ length: Math.min(25, N - i) }, (_, k) => h.api(h.url(), "POST", "/api/v1/jobs", { project: name(i + k) })));
    }
    const page = await h.newPage();
    await page.goto(h.url() + "/#/p/" + name(N - 1));
    const nav = page.getByRole("navigation", { name: "Projects" });
    const links = () => nav.locator(".project__name").count();
    await waitFor(async () => (await links()) === 200, "the first page: 200 projects");
    const more = nav.getByRole("button", { name: "More projects" });
    await more.waitFor({ timeout: 5_000 });
    // Created first, so least recently active: on the second page.
    const oldest = nav.getByRole("link", { name: new RegExp(name(3)) });
    await nav.getByLabel("Find a project").fill(name(3));
    expect((await oldest.count()) === 0, "not loaded yet");
    await nav.getByRole("button", { name: "Search older projects" }).click();
    await oldest.waitFor({ timeout: 10_000 });
    await nav.getByLabel("Find a project").fill("");
    await waitFor(async () => (await links()) === N, `all ${N} projects`);
    expect((await nav.getByRole("button", { name: /More projects|Search older/ }).count()) === 0, "no more pages");
    // Activity in a project of the second page: it moves up with its new
    // count (the sidebar asks again every few seconds), and none is lost.
    await h.createReported(name(3), [{ name: "work" }]);
    const count = nav.getByRole("link", { name: new RegExp(name(3)) }).locator(".project__count");
    await waitFor(async () => (await count.textContent()) === "2 / 2", "two active jobs in " + name(3) + " after a poll");
    expect((await nav.locator(".project__name").first().textContent()) === name(3), "most recent activity first");
    expect((await links()) === N, "still every project");
    await oldest.click();
    await page.locator("#project-title", { hasText: name(3) }).waitFor({ timeout: 10_000 });
    await page.close();
  });

  test("theme: follows prefers-color-scheme until toggled, then remembers the choice", async () => {
    const page = await h.newPage();
    await page.emulateMedia({ colorScheme: "dark" });
    await page.goto(h.url() + "/#/p/e2e-theme");
    const theme = () => page.evaluate(() => document.documentElement.dataset.theme);
    await waitFor(async () => (await theme()) === "dark", "dark from the system");
    await page.emulateMedia({ colorScheme: "light" });
    // (A live change is followed too, but Chromium delivers the media query's
    // change only when it renders the page, which a busy run may not do for long.)
    await page.reload();
    await waitFor(async () => (await theme()) === "light", "light from the system after it changed");
    await page.getByRole("button", { name: "Use the dark theme" }).click();
    await waitFor(async () => (await theme()) === "dark", "dark by hand");
    const bg = await page.evaluate(() => getComputedStyle(document.documentElement).backgroundColor);
    expect(bg === "rgb(18, 20, 24)", "the dark background, got " + bg);
    await page.reload();
    await waitFor(async () => (await theme()) === "dark", "dark remembered after a reload, whatever the system says");
    await page.getByRole("button", { name: "Auto" }).click();
    await waitFor(async () => (await theme()) === "light", "back to the system's light");
    await page.close();
  });

  test("accessibility: axe finds no serious violation on the list (cards and rows), the detail page and the confirmation, light and dark", async () => {
    await h.closePages();
    const project = "e2e-axe";
    const parent = await h.api(h.url(), "POST", "/api/v1/jobs", { project, name: "batch", expected_children: 2, tags: ["axe"], metadata: { doc: "https://example.org/d" } });
    const child = await h.api(h.url(), "POST", "/api/v1/jobs", { parent_id: parent.job_id, name: "part", stages: [{ name: "a" }, { name: "b" }] });
    await h.report(child.job_id, { stage: "b", progress: 0.5, message: "half" });
    const failed = await h.createReported(project);
    await h.report(failed.job_id, { state: "failed", error: "boom" });
    const many = await createMany(h, "e2e-axe-rows", 120);
    for (const scheme of ["light", "dark"]) {
      const page = await h.newPage();
      await page.emulateMedia({ colorScheme: scheme, reducedMotion: "reduce" });
      const check = async (what) => {
        const v = await axeSerious(page);
        expect(v.length === 0, `no serious axe violation on ${what} (${scheme}), got:\n    ${v.join("\n    ")}`);
      };
      await page.goto(h.url() + "/#/p/" + project);
      await page.locator(`article.job[data-job-id="${failed.job_id}"]`).waitFor({ timeout: 10_000 });
      await page.locator(".conn[data-state=open]").waitFor({ timeout: 10_000 });
      await check("the list of cards");
      await page.getByLabel("Select all").check();
      await page.getByRole("region", { name: "Selected jobs" }).getByRole("button", { name: /^Delete/ }).click();
      await page.getByRole("dialog").waitFor({ timeout: 5_000 });
      await check("the delete confirmation");
      await page.getByRole("dialog").getByRole("button", { name: "Keep" }).click();
      await page.goto(h.url() + "/#/p/e2e-axe-rows");
      await waitFor(async () => (await shown(page)) === many.length, "the rows");
      await check("the compact rows");
      await page.goto(h.url() + "/#/jobs/" + parent.job_id);
      await page.locator(`li.child[data-job-id="${child.job_id}"]`).waitFor({ timeout: 10_000 });
      await check("the detail page");
      await page.close();
    }
  });

  test("screenshots of the list and the detail, light and dark", async () => {
    await h.freshServer(); // the pictures show these jobs only
    const project = "video-transcode";
    const st = [{ name: "fetch" }, { name: "probe" }, { name: "encode", weight: 6 }, { name: "upload", weight: 2 }];
    const mk = (name, extra = {}) => h.api(h.url(), "POST", "/api/v1/jobs", { project, name, stages: st, ...extra });
    const done = await mk("trailer.mov → 1080p", { tags: ["customer-42"], metadata: { customer: "acme", source: "https://example.org/trailer.mov" } });
    await h.report(done.job_id, { stage: "encode", progress: 0.5 });
    await h.report(done.job_id, { state: "succeeded", result: { output: "https://example.org/trailer-1080p.mp4", frames: 1800, size_mb: 412.5 } });
    const failed = await mk("interview.mxf → 4k");
    await h.report(failed.job_id, { stage: "encode", progress: 0.3, message: "frame 540/1800" });
    await h.report(failed.job_id, { state: "failed", error: "encode: exit status 1: out of disk space" });
    const canceled = await mk("teaser.mov → 720p");
    await h.report(canceled.job_id, { stage: "probe", progress: 0.6 });
    await h.api(h.url(), "POST", `/api/v1/jobs/${canceled.job_id}/cancel`, {});
    const running = await mk("keynote.mp4 → 1080p", { tags: ["customer-42"], metadata: { customer: "acme", requested_by: "erin" } });
    await h.report(running.job_id, { stage: "encode", current: 1240, total: 1800, message: "frame 1240/1800" });
    await h.api(h.url(), "POST", `/api/v1/jobs/${running.job_id}/logs`, {
      lines: [
        "fetch: GET https://example.org/keynote.mp4 (2.1 GiB)",
        "probe: h264 1920x1080 29.97 fps, aac 48 kHz, 60:02",
        "encode: preset=medium crf=21 threads=8",
        ...Array.from({ length: 12 }, (_, i) => `encode: frame ${(i + 1) * 100}/1800 fps=${(41 + (i % 4) * 0.7).toFixed(1)} q=23.0`),
      ],
    });
    const early = await mk("b-roll.mov → 1080p");
    await h.report(early.job_id, { stage: "probe", progress: 0.4, message: "reading streams" });
    for (const p of ["thumbnails", "docs-import"]) {
      const j = await h.createReported(p, [{ name: "work" }]);
      if (p === "docs-import") await h.report(j.job_id, { progress: 0.7 });
    }
    for (const scheme of ["light", "dark"]) {
      const page = await h.newPage();
      await page.emulateMedia({ colorScheme: scheme, reducedMotion: "reduce" });
      await page.setViewportSize({ width: 1280, height: 860 });
      await page.goto(h.url() + "/#/p/" + project);
      await page.locator(".conn[data-state=open]").waitFor({ timeout: 10_000 });
      await waitFor(async () => (await page.locator("article.job").count()) === 5, "five jobs");
      await h.sleep(400);
      await page.screenshot({ path: h.screenshot(`dashboard-list-${scheme}.png`) });
      await page.goto(h.url() + "/#/jobs/" + running.job_id);
      await page.locator(`section.detail[data-job-id="${running.job_id}"]`).waitFor({ timeout: 10_000 });
      await h.sleep(400);
      await page.screenshot({ path: h.screenshot(`dashboard-detail-${scheme}.png`) });
      await page.close();
    }
  });
}
