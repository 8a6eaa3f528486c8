import { describe, expect, it } from "vitest";
import { backoffCeiling, fullJitter } from "@progressd/client";

describe("full-jitter backoff", () => {
  it("doubles the ceiling per attempt up to the cap", () => {
    const o = { baseMs: 500, capMs: 30_000 };
    expect([0, 1, 2, 3, 4, 5, 6, 7, 60].map((n) => backoffCeiling(n, o))).toEqual([
      500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000,
    ]);
  });

  it("picks a uniform point below the ceiling with the injected random", () => {
    expect(fullJitter(3, () => 0, { baseMs: 500 })).toBe(0);
    expect(fullJitter(3, () => 0.5, { baseMs: 500 })).toBe(2000);
    expect(fullJitter(3, () => 0.999, { baseMs: 500 })).toBe(3996);
    expect(fullJitter(10, () => 0.5, { baseMs: 500, capMs: 30_000 })).toBe(15_000);
  });

  it("honours a floor and clamps a bad random", () => {
    expect(fullJitter(0, () => 0, { minMs: 5000 })).toBe(5000);
    expect(fullJitter(1, () => 7)).toBe(1000);
    expect(fullJitter(1, () => -1)).toBe(0);
  });

  it("spreads many clients over the whole window (no lockstep)", () => {
    let seed = 42;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const delays = Array.from({ length: 1000 }, () => fullJitter(4, rnd, { baseMs: 500 }));
    expect(Math.min(...delays)).toBeLessThan(500);
    expect(Math.max(...delays)).toBeGreaterThan(7500);
    expect(new Set(delays).size).toBeGreaterThan(900);
  });
});
