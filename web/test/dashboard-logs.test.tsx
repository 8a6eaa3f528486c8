// The log panel's view: lines in order with their numbers, stderr marked,
// the count and "older ones dropped", Pause/Follow while the job runs.
// (Following the tail as lines arrive needs layout: the Chromium e2e.)
import { cleanup, fireEvent, render, screen } from "@testing-library/react";
import { afterEach, describe, expect, it } from "vitest";
import type { LogLine } from "@progressd/client";
import { LogPanel } from "../src/dashboard/LogPanel";

afterEach(cleanup);

const lines: LogLine[] = [
  { n: 41, t: "2026-12-03T08:00:00.000Z", stream: "stdout", stage: "encode", text: "frame 1" },
  { n: 42, t: "2026-12-03T08:00:01.000Z", stream: "stderr", stage: "encode", text: "warning: <b>not html</b>" },
  { n: 43, t: "2026-12-03T08:00:02.000Z", stream: "log", text: "done" },
];

describe("LogPanel", () => {
  it("shows each line once, in order, stderr marked, text never parsed as HTML", () => {
    const { container } = render(<LogPanel lines={lines} truncated finished={false} />);
    const rows = [...container.querySelectorAll(".logline")];
    expect(rows.map((r) => r.getAttribute("data-n"))).toEqual(["41", "42", "43"]);
    expect(rows[1]!.className).toContain("logline--stderr");
    expect(rows[1]!.querySelector("b")).toBeNull();
    expect(rows[1]!.textContent).toContain("<b>not html</b>");
    expect(screen.getByText("3 lines (older ones dropped)")).toBeTruthy();
    expect(screen.getByRole("log", { name: "Log lines" }).getAttribute("tabindex")).toBe("0");
  });

  it("pauses and follows while the job runs, and offers neither once it finished", () => {
    const { rerender } = render(<LogPanel lines={lines} finished={false} />);
    const pause = screen.getByRole("button", { name: "Pause" });
    expect(pause.getAttribute("aria-pressed")).toBe("true");
    fireEvent.click(pause);
    expect(screen.getByRole("button", { name: "Follow" }).getAttribute("aria-pressed")).toBe("false");
    rerender(<LogPanel lines={lines} finished />);
    expect(screen.queryByRole("button", { name: /Pause|Follow/ })).toBeNull();
    rerender(<LogPanel lines={lines.slice(0, 1)} finished={false} />);
    expect(screen.getByText("1 line")).toBeTruthy(); // not "1 lines"
    rerender(<LogPanel lines={[]} finished error="forbidden" />);
    expect(screen.getByText("no lines")).toBeTruthy();
    expect(screen.getByRole("alert").textContent).toContain("forbidden");
  });
});
