// The dashboard's "Start a job" form against a real progressd server run
// with a pipelines file whose pipeline takes a param: the picker lists the
// server's pipelines, the form asks for the param, and submitting creates
// a job of that pipeline with that param.
import { act, cleanup, fireEvent, render, screen } from "@testing-library/react";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest";
import { ProgressClient } from "@progressd/client";
import type { PipelineInfo } from "@progressd/client";
import { StartJob, usePipelines } from "../src/dashboard/StartJob";
import { ProgressProvider, useProgressClient } from "@progressd/react";
import { startServer, type RunningServer } from "./global-setup";
import { server, uniqueProject, waitFor } from "./server-helpers";

const PIPELINES = `
pipelines:
  greet:
    description: Says hello.
    params: [who, times]
    stages:
      - name: say
        run: ["sh", "-c", "echo \\"hello $1\\"", "sh", "{{who}}"]
  tidy:
    stages:
      - name: sweep
        weight: 2
        run: ["true"]
`;

let tmp: string;
let S: RunningServer;
const clients: ProgressClient[] = [];

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), "progressd-dash-test-"));
  writeFileSync(join(tmp, "pipelines.yaml"), PIPELINES);
  S = await startServer(inject("bin"), join(tmp, "data"), ["--pipelines", join(tmp, "pipelines.yaml")]);
});
afterAll(async () => {
  await S?.stop();
  rmSync(tmp, { recursive: true, force: true });
});
afterEach(async () => {
  cleanup();
  await Promise.all(clients.splice(0).map((c) => c.dispose()));
});

function newClient(url: string): ProgressClient {
  const c = new ProgressClient({ server: url, crossTab: false, onlineTarget: null, WebSocket: null, EventSource: null });
  clients.push(c);
  return c;
}

function Picker({ project, onError }: { project: string; onError: (m: string | null) => void }) {
  const pipelines = usePipelines(useProgressClient(), null);
  return <StartJob project={project} pipelines={pipelines} onError={onError} onAuthError={() => onError("401")} />;
}

describe("dashboard: start a job", () => {
  it("lists the server's pipelines through the client's Api", async () => {
    const ps = await newClient(S.url).api.listPipelines();
    expect(ps).toEqual<PipelineInfo[]>([
      { name: "greet", description: "Says hello.", params: ["who", "times"], stages: [{ name: "say", weight: 1 }] },
      { name: "tidy", params: [], stages: [{ name: "sweep", weight: 2 }] },
    ]);
    const demo = await newClient(server()).api.listPipelines();
    expect(demo.map((p) => p.name)).toEqual(["demo"]);
  });

  it("starts a pipeline with the params typed in its form", async () => {
    const c = newClient(S.url);
    const project = uniqueProject("dash");
    const errors: (string | null)[] = [];
    render(
      <ProgressProvider client={c}>
        <Picker project={project} onError={(m) => errors.push(m)} />
      </ProgressProvider>,
    );
    const select = await screen.findByLabelText<HTMLSelectElement>("Pipeline");
    expect([...select.options].map((o) => o.value)).toEqual(["greet", "tidy"]);
    expect(select.value).toBe("greet");
    fireEvent.change(screen.getByLabelText("who"), { target: { value: "world; $(rm -rf /)" } });
    fireEvent.change(screen.getByLabelText("times"), { target: { value: "3" } });
    await act(async () => {
      fireEvent.click(screen.getByRole("button", { name: "Start job" }));
    });
    const created = await waitFor(async () => {
      const l = await c.api.listJobs({ project });
      return l.jobs.length === 1 ? l.jobs[0] : undefined;
    }, "the job to be created");
    const job = await c.api.getJob(created.job_id);
    expect(job).toMatchObject({ pipeline: "greet", params: { who: "world; $(rm -rf /)", times: "3" } });
    expect(errors.filter((e) => e !== null)).toEqual([]);

    // The other pipeline takes no params: its form has none.
    fireEvent.change(select, { target: { value: "tidy" } });
    expect(screen.queryByLabelText("who")).toBeNull();
  });

  it("shows the server's error when a create is refused", async () => {
    const c = newClient(S.url);
    const errors: (string | null)[] = [];
    // An empty project name is refused by the server (400), and said.
    render(
      <ProgressProvider client={c}>
        <Picker project="" onError={(m) => errors.push(m)} />
      </ProgressProvider>,
    );
    await screen.findByLabelText("Pipeline");
    fireEvent.change(screen.getByLabelText("Pipeline"), { target: { value: "tidy" } });
    await act(async () => {
      fireEvent.click(screen.getByRole("button", { name: "Start job" }));
    });
    await waitFor(() => errors.some((e) => e !== null && /project/i.test(e)), "the error to be reported");
  });

  it("is hidden when the server runs no pipelines", () => {
    const c = newClient(S.url);
    const { container } = render(
      <ProgressProvider client={c}>
        <StartJob project="p" pipelines={[]} onError={() => {}} onAuthError={() => {}} />
      </ProgressProvider>,
    );
    expect(container.querySelector("form")).toBeNull();
  });
});
