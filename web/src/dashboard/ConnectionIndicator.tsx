import { useEffect, useState } from "react";
import type { ConnectionStatus } from "@progressd/client";

function describe(s: ConnectionStatus, now: number, hasToken: boolean): { tone: string; text: string; detail: string } {
  const via = s.transport === "sse" ? "Server-Sent Events" : "WebSocket";
  const shared = s.role === "follower" ? " (shared with another tab)" : s.role === "leader" ? " (serving other tabs too)" : "";
  switch (s.state) {
    case "open":
      return { tone: "ok", text: "Live", detail: `Connected over ${via}${shared}` };
    case "connecting":
      return { tone: "wait", text: "Connecting…", detail: "Opening the live connection" + shared };
    case "reconnecting": {
      const secs = s.retryAt ? Math.max(0, Math.ceil((s.retryAt - now) / 1000)) : 0;
      const why =
        s.reason === "going_away"
          ? "The server restarted"
          : s.reason === "offline"
            ? "You are offline"
            : s.reason === "too_many_connections"
              ? "Too many connections for this user"
              : s.reason === "too_slow"
                ? "This page fell behind"
                : "The connection dropped";
      return { tone: "warn", text: secs > 0 ? `Reconnecting in ${secs} s` : "Reconnecting…", detail: why };
    }
    default:
      if (s.reason === "unauthorized")
        return hasToken
          ? { tone: "bad", text: "Token refused", detail: "The server refused this token: it expired or was signed with another secret" }
          : { tone: "bad", text: "Token needed", detail: "This server needs a token" };
      if (s.reason === "idle") return { tone: "idle", text: "Idle", detail: "Nothing to watch" };
      return { tone: "idle", text: "Closed", detail: "Not connected" };
  }
}

export function ConnectionIndicator({ status, hasToken }: { status: ConnectionStatus; hasToken: boolean }) {
  const [now, setNow] = useState(() => Date.now());
  const counting = status.state === "reconnecting" && !!status.retryAt;
  useEffect(() => {
    if (!counting) return;
    setNow(Date.now());
    const t = setInterval(() => setNow(Date.now()), 500);
    return () => clearInterval(t);
  }, [counting, status.retryAt]);
  const d = describe(status, now, hasToken);
  return (
    <div className={"conn conn--" + d.tone} role="status" aria-live="polite" title={d.detail} data-state={status.state}>
      <span className="conn__dot" aria-hidden="true" />
      <span className="conn__text">{d.text}</span>
      <span className="sr-only">: {d.detail}</span>
    </div>
  );
}
