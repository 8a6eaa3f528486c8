import { useCallback, useEffect, useState, type FormEvent } from "react";
import { InlineProgressBar, ProgressProvider, useConnectionState, useProjectJobs } from "@progressd/react";

/** What the backend's GET /api/session answers for a signed-in user. */
interface Session {
  user: string;
  project: string;
  /** progressd's URL, as this browser reaches it (another origin). */
  progressd: string;
  /** Read-only, scoped to project:<project>, signed for user. */
  token: string;
  expires_in: number;
}

/** Calls the page's own backend (same origin: the session cookie goes along). */
async function backend<T>(method: string, path: string, body?: unknown): Promise<T> {
  const r = await fetch(path, {
    method,
    headers: body === undefined ? {} : { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!r.ok) {
    const data = await r.json().catch(() => null);
    const detail = typeof data?.detail === "string" ? data.detail : JSON.stringify(data?.detail ?? r.statusText);
    throw Object.assign(new Error(`${method} ${path}: ${r.status} ${detail}`), { status: r.status });
  }
  return (r.status === 204 ? undefined : await r.json()) as T;
}

export function App() {
  // undefined: asking the backend; null: signed out.
  const [session, setSession] = useState<Session | null | undefined>(undefined);
  const [error, setError] = useState<string | null>(null);

  const load = useCallback(async () => {
    try {
      setSession(await backend<Session>("GET", "/api/session"));
      setError(null);
    } catch (e) {
      if ((e as { status?: number }).status === 401) setSession(null);
      else setError(String((e as Error).message));
    }
  }, []);
  useEffect(() => void load(), [load]);

  // The browser's token lives 15 minutes: fetch a fresh one before it ends.
  // The provider hands it to the open connection, which stays open.
  useEffect(() => {
    if (!session) return;
    const t = setTimeout(() => void load(), session.expires_in * 800);
    return () => clearTimeout(t);
  }, [session, load]);

  if (session === undefined) return <main>{error ? <p role="alert">{error}</p> : <p className="muted">Loading…</p>}</main>;
  if (session === null) return <SignIn onSignedIn={load} />;
  return (
    <ProgressProvider server={session.progressd} token={session.token}>
      <Imports
        session={session}
        onSignOut={async () => {
          await backend("POST", "/api/logout");
          setSession(null);
        }}
      />
    </ProgressProvider>
  );
}

function SignIn({ onSignedIn }: { onSignedIn: () => void }) {
  const [user, setUser] = useState("");
  const [error, setError] = useState<string | null>(null);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    try {
      await backend("POST", "/api/login", { user });
      onSignedIn();
    } catch (err) {
      setError((err as Error).message);
    }
  };
  return (
    <main>
      <h1>Imports</h1>
      <form onSubmit={submit}>
        <label>
          User name
          <input name="user" value={user} onChange={(e) => setUser(e.target.value)} autoFocus />
        </label>
        <button type="submit">Sign in</button>
      </form>
      {error && <p role="alert">{error}</p>}
      <p className="muted">Any name signs you in: this demo has no passwords.</p>
    </main>
  );
}

function Imports({ session, onSignOut }: { session: Session; onSignOut: () => void }) {
  const jobs = useProjectJobs(session.project);
  const conn = useConnectionState();
  const [rows, setRows] = useState(2000);
  const [seconds, setSeconds] = useState(8);
  const [starting, setStarting] = useState(false);
  const [error, setError] = useState<string | null>(null);

  const start = async (e: FormEvent) => {
    e.preventDefault();
    setStarting(true);
    try {
      // The backend creates the job and runs it; the project channel brings
      // it to this list (and to the user's other tabs) by itself.
      await backend("POST", "/api/jobs", { rows, seconds });
      setError(null);
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setStarting(false);
    }
  };

  return (
    <main data-connection={conn.state} data-role={conn.role}>
      <header>
        <h1>Imports</h1>
        <span>
          {session.user} <button onClick={onSignOut}>Sign out</button>
        </span>
      </header>
      <form onSubmit={start}>
        <label>
          Rows
          <input name="rows" type="number" min={1} value={rows} onChange={(e) => setRows(Number(e.target.value))} />
        </label>
        <label>
          Seconds
          <input name="seconds" type="number" min={1} value={seconds} onChange={(e) => setSeconds(Number(e.target.value))} />
        </label>
        <button type="submit" disabled={starting}>
          Start job
        </button>
      </form>
      {error && <p role="alert">{error}</p>}
      {jobs.length === 0 ? (
        <p className="muted">No imports yet.</p>
      ) : (
        <ul aria-label="Your imports">
          {jobs.map((j) => (
            <li key={j.job_id}>
              {/* watch={false}: the project subscription already brings every change (and the token's scope names only the project). */}
              <InlineProgressBar jobId={j.job_id} watch={false} showLabel label={j.name || `Import ${j.job_id.slice(0, 8)}`} />
            </li>
          ))}
        </ul>
      )}
      <p className="muted">
        Live from progressd ({conn.state}
        {conn.role !== "solo" ? `, ${conn.role} tab` : ""}).
      </p>
    </main>
  );
}
