// Windowing for long job lists: only the rows near the viewport are in
// the DOM, so 10,000 jobs scroll like 30.
//
// Rows have one fixed height, so which rows are visible is arithmetic on
// the page's scroll position; a library that measures rows of varying
// height (@tanstack/react-virtual, react-window) would add bytes and work
// that fixed rows do not need. The page itself scrolls (no inner scroll
// box), so the browser's find, keyboard scrolling and the sticky sidebar
// behave as on a short list.

import { useEffect, useLayoutEffect, useRef, useState, type RefObject } from "react";

export interface RowRange {
  /** First row rendered (inclusive). */
  start: number;
  /** Last row rendered (exclusive). */
  end: number;
}

/**
 * The rows to render for a list of count rows of rowHeight px whose top is
 * top px from the viewport's top (negative once scrolled past), in a
 * viewport of viewport px, with overscan rows on either side.
 */
export function visibleRows(top: number, viewport: number, count: number, rowHeight: number, overscan: number): RowRange {
  if (count <= 0 || rowHeight <= 0) return { start: 0, end: 0 };
  const first = Math.floor(Math.max(0, -top) / rowHeight);
  const last = Math.ceil(Math.max(0, viewport - top) / rowHeight);
  return {
    start: Math.max(0, Math.min(count, first - overscan)),
    end: Math.max(0, Math.min(count, last + overscan)),
  };
}

/**
 * The range of rows of the list element ref that the viewport shows, kept
 * current on scroll and resize. It changes (and the caller re-renders)
 * only when a row enters or leaves the range, not on every scrolled pixel.
 */
export function useWindowedRows(ref: RefObject<HTMLElement | null>, count: number, rowHeight: number, overscan = 8): RowRange {
  const [range, setRange] = useState<RowRange>(() => visibleRows(0, initialViewport(), count, rowHeight, overscan));
  const measure = () => {
    const el = ref.current;
    if (!el) return;
    const next = visibleRows(el.getBoundingClientRect().top, window.innerHeight, count, rowHeight, overscan);
    setRange((r) => (r.start === next.start && r.end === next.end ? r : next));
  };
  const latest = useRef(measure);
  latest.current = measure;
  // Before paint: a list that grew or shrank shows the right rows at once.
  // Only then and on scroll or resize: reading the list's position forces a
  // layout, which on every live update cost a tenth of the main thread.
  useLayoutEffect(() => latest.current(), [count, rowHeight, overscan]);
  useEffect(() => {
    let frame = 0;
    const onScroll = () => {
      if (frame) return;
      frame = requestAnimationFrame(() => {
        frame = 0;
        latest.current();
      });
    };
    window.addEventListener("scroll", onScroll, { passive: true });
    window.addEventListener("resize", onScroll);
    return () => {
      window.removeEventListener("scroll", onScroll);
      window.removeEventListener("resize", onScroll);
      if (frame) cancelAnimationFrame(frame);
    };
  }, []);
  return range;
}

function initialViewport(): number {
  return typeof window === "undefined" ? 800 : window.innerHeight || 800;
}
