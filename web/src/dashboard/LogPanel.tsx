import { memo, useLayoutEffect, useRef, useState } from "react";
import type { LogLine } from "@progressd/client";
import { useJobLogs } from "@progressd/react";

/** A job's live log (logs:<id>, the newest 1,000 lines) in a LogPanel. */
export function JobLogs({ id, finished }: { id: string; finished: boolean }) {
  const logs = useJobLogs(id);
  return <LogPanel lines={logs.lines} truncated={logs.truncated} error={logs.error?.message} finished={finished} />;
}

/**
 * A job's log: the kept lines, then live ones, in a box of its own that
 * follows the newest line until the reader scrolls up (or presses Pause),
 * and follows again at the bottom (or on Follow). stderr is coloured.
 * The lines given are already bounded (the log hook keeps the newest
 * 1,000); each is a memoized row, so a new batch renders only its lines.
 */
export function LogPanel({
  lines,
  truncated,
  error,
  finished,
}: {
  lines: readonly LogLine[];
  truncated?: boolean;
  error?: string;
  /** The job is terminal: no more lines will come. */
  finished: boolean;
}) {
  const box = useRef<HTMLDivElement>(null);
  const [follow, setFollow] = useState(true);
  const last = lines.length > 0 ? lines[lines.length - 1]!.n : 0;

  // Following: the newest line stays in view as lines arrive.
  useLayoutEffect(() => {
    const el = box.current;
    if (el && follow) el.scrollTop = el.scrollHeight;
  }, [last, follow]);

  const onScroll = () => {
    const el = box.current;
    if (!el) return;
    const atBottom = el.scrollHeight - el.scrollTop - el.clientHeight < 8;
    if (atBottom !== follow) setFollow(atBottom);
  };

  return (
    <section className="logs" aria-labelledby="logs-title">
      <div className="logs__head">
        <h2 id="logs-title" className="detail__sub">
          Log
        </h2>
        <span className="small muted" data-lines={lines.length}>
          {lines.length === 0 ? (finished ? "no lines" : "waiting for lines…") : `${lines.length.toLocaleString()} ${lines.length === 1 ? "line" : "lines"}${truncated ? " (older ones dropped)" : ""}`}
        </span>
        {!finished && lines.length > 0 && (
          <button type="button" className="btn btn--small" aria-pressed={follow} onClick={() => setFollow((f) => !f)}>
            {follow ? "Pause" : "Follow"}
          </button>
        )}
      </div>
      {error && (
        <p className="alert" role="alert">
          The log is not available: {error}
        </p>
      )}
      <div ref={box} className="logs__box" tabIndex={0} role="log" aria-live="off" aria-label="Log lines" onScroll={onScroll}>
        {lines.map((l) => (
          <Line key={l.n} line={l} />
        ))}
      </div>
    </section>
  );
}

const Line = memo(function Line({ line }: { line: LogLine }) {
  return (
    <div className={"logline logline--" + line.stream} data-n={line.n}>
      <span className="logline__n" aria-hidden="true">
        {line.n}
      </span>
      {line.stage && <span className="logline__stage">{line.stage}</span>}
      <span className="logline__text">{line.text}</span>
    </div>
  );
});
