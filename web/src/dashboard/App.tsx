import { useCallback, useEffect, useMemo, useState, useSyncExternalStore } from "react";
import { tokenUser, type ProjectSummary as ServerProject } from "@progressd/client";
import { ProgressProvider, useConnectionState, useProgressClient, useProjects } from "@progressd/react";
import { ConnectionIndicator } from "./ConnectionIndicator";
import { JobDetail } from "./JobDetail";
import { ProjectView } from "./ProjectView";
import { usePipelines } from "./StartJob";
import { TokenPanel } from "./TokenPanel";
import { useHashJob, useHashProject, useSavedProjects, useThemeChoice, useToken } from "./settings";
import { otherTheme } from "./theme";

export function App() {
  const [token, setToken] = useToken();
  return (
    <ProgressProvider token={token}>
      <Dashboard token={token} setToken={setToken} />
    </ProgressProvider>
  );
}

/** How often the sidebar asks for every project's counts. */
const PROJECTS_POLL_MS = 5000;

const EMPTY_PROJECTS: readonly ServerProject[] = [];

interface ProjectSummary {
  name: string;
  active: number;
  total: number;
}

/**
 * The sidebar: the server's project list (GET /api/v1/projects: every
 * project the user has jobs in, most recent activity first, right after a
 * restart), then projects opened by hand that have no jobs yet.
 */
function summarize(server: readonly ServerProject[], extra: string[]): ProjectSummary[] {
  const out: ProjectSummary[] = server.map((p) => {
    const c = p.jobs;
    return { name: p.project, active: c.queued + c.running, total: c.queued + c.running + c.succeeded + c.failed + c.canceled };
  });
  const seen = new Set(out.map((p) => p.name));
  for (const p of extra) if (!seen.has(p)) out.push({ name: p, active: 0, total: 0 });
  return out;
}

function Dashboard({ token, setToken }: { token: string | null; setToken: (t: string | null) => void }) {
  const client = useProgressClient();
  const status = useConnectionState();
  const user = tokenUser(token);
  // The counts of the project shown follow its channel (the list is fetched
  // again, at most every 2 s, while its jobs change); the others' are polled.
  // Not the user:<self> channel: it delivered every update of the project
  // shown a second time (both channels carry it), and an operator's sidebar
  // covers other owners' jobs, which that channel does not.
  const projectPages = useProjects({ pollMs: PROJECTS_POLL_MS });
  const serverProjects = projectPages.data ?? EMPTY_PROJECTS;
  const [saved, setSaved] = useSavedProjects();
  const [selected, select] = useHashProject();
  const jobId = useHashJob();
  const [tokenOpen, setTokenOpen] = useState(false);
  const [authNeeded, setAuthNeeded] = useState(false);
  const pipelines = usePipelines(client, token);

  const projects = useMemo(
    () => summarize(serverProjects, selected ? [...saved, selected] : saved),
    [serverProjects, saved, selected],
  );
  // On a job's page, its project is the one marked in the sidebar (once the job is known).
  const jobProject = useJobProject(jobId);
  const current = jobId ? (jobProject ?? "") : (selected ?? projects[0]?.name ?? "demo");
  const [find, setFind] = useState("");
  const listed = useMemo(() => {
    const q = find.trim().toLowerCase();
    return q ? projects.filter((p) => p.name.toLowerCase().includes(q) || p.name === current) : projects;
  }, [projects, find, current]);

  // Ask the server once whether it wants a token (single-user mode answers without one).
  useEffect(() => {
    let live = true;
    client.api
      .listJobs({ limit: 1 })
      .then(() => live && setAuthNeeded(false))
      .catch((e: { status?: number }) => live && setAuthNeeded(e?.status === 401));
    return () => {
      live = false;
    };
  }, [client, token]);

  const onAuthError = useCallback(() => setAuthNeeded(true), []);
  const unauthorized = authNeeded || (status.state === "closed" && status.reason === "unauthorized");

  const addProject = (name: string) => {
    const n = name.trim();
    if (!n) return;
    if (!saved.includes(n)) setSaved([...saved, n]);
    select(n);
  };

  return (
    <div className="app">
      <header className="topbar">
        <div className="brand">
          <svg viewBox="0 0 24 24" width="22" height="22" aria-hidden="true">
            <rect x="2" y="9" width="20" height="6" rx="3" fill="var(--track)" />
            <rect x="2" y="9" width="13" height="6" rx="3" fill="var(--accent)" />
          </svg>
          <span>progressd</span>
        </div>
        <div className="topbar__right">
          <ConnectionIndicator status={status} hasToken={!!token} />
          <button type="button" className="chip chip--user" onClick={() => setTokenOpen((o) => !o)} aria-expanded={tokenOpen || unauthorized}>
            {unauthorized && !token ? (
              // No token yet: there is no user to name ("local" is single-user mode's).
              "Sign in"
            ) : (
              <>
                <span className="chip__label">user</span> {user ?? "unknown"}
              </>
            )}
          </button>
          <ThemeToggle />
          <a className="link" href="/docs">
            API docs
          </a>
        </div>
      </header>

      {(tokenOpen || unauthorized) && (
        <TokenPanel
          token={token}
          needed={unauthorized}
          onSave={(t) => {
            setToken(t);
            setTokenOpen(false);
          }}
          onClose={unauthorized ? undefined : () => setTokenOpen(false)}
        />
      )}

      <div className="layout">
        <nav className="sidebar" aria-label="Projects">
          <h2 className="sidebar__title">Projects</h2>
          {projects.length > 8 && (
            <label className="project-search">
              <span className="sr-only">Find a project</span>
              <input type="search" placeholder="Find a project…" value={find} onChange={(e) => setFind(e.target.value)} />
            </label>
          )}
          <ul className="projects">
            {listed.map((p) => (
              <li key={p.name}>
                <a
                  href={"#/p/" + encodeURIComponent(p.name)}
                  className={"project" + (p.name === current ? " project--current" : "")}
                  aria-current={p.name === current ? "page" : undefined}
                >
                  <span className="project__name">{p.name}</span>
                  <span className="project__count" title={`${p.active} active of ${p.total}`}>
                    {p.active > 0 ? <span className="pulse" aria-hidden="true" /> : null}
                    {p.active > 0 ? `${p.active} / ${p.total}` : p.total}
                  </span>
                </a>
              </li>
            ))}
            {projects.length === 0 && <li className="muted small">No projects yet.</li>}
          </ul>
          {projectPages.hasMore && (
            // The server pages its list (most recent activity first); the
            // search looks through the projects loaded, so it says so.
            <p className="projects__more">
              <button type="button" className="btn btn--small btn--ghost" onClick={projectPages.loadMore} disabled={projectPages.loadingMore}>
                {projectPages.loadingMore ? "Loading…" : find.trim() ? "Search older projects" : "More projects"}
              </button>
            </p>
          )}
          <AddProject onAdd={addProject} />
        </nav>

        <main className="main">
          {unauthorized ? (
            // The token panel above says what to do; nothing here repeats its error.
            <p className="muted">Jobs show here once the server accepts a token.</p>
          ) : jobId ? (
            <JobDetail key={jobId} id={jobId} />
          ) : (
            <ProjectView
              key={current}
              project={current}
              summary={serverProjects.find((p) => p.project === current)}
              pipelines={pipelines}
              onAuthError={onAuthError}
            />
          )}
        </main>
      </div>
    </div>
  );
}

/**
 * The project of a job the page holds (the detail page watches it), as a
 * string: the sidebar re-renders when it changes, not on each update of the job.
 */
function useJobProject(jobId: string | null): string | undefined {
  const client = useProgressClient();
  const sub = useCallback((l: () => void) => (jobId ? client.store.subscribeJob(jobId, l) : () => undefined), [client, jobId]);
  return useSyncExternalStore(sub, () => (jobId ? client.store.get(jobId)?.project : undefined));
}

function AddProject({ onAdd }: { onAdd: (name: string) => void }) {
  const [name, setName] = useState("");
  return (
    <form
      className="add-project"
      onSubmit={(e) => {
        e.preventDefault();
        onAdd(name);
        setName("");
      }}
    >
      <label className="sr-only" htmlFor="add-project">
        Open a project
      </label>
      <input id="add-project" value={name} onChange={(e) => setName(e.target.value)} placeholder="Open a project…" maxLength={200} />
      <button type="submit" className="btn btn--small" disabled={!name.trim()}>
        Open
      </button>
    </form>
  );
}

/** Light or dark by hand; "auto" goes back to the system's setting. */
function ThemeToggle() {
  const [choice, setChoice] = useThemeChoice();
  const other = otherTheme(choice);
  return (
    <span className="theme">
      <button type="button" className="chip" onClick={() => setChoice(other)} aria-label={`Use the ${other} theme`} title={`Use the ${other} theme`}>
        {other === "dark" ? "☾ Dark" : "☀ Light"}
      </button>
      {choice !== "auto" && (
        <button type="button" className="chip" onClick={() => setChoice("auto")} title="Follow the system's light or dark setting">
          Auto
        </button>
      )}
    </span>
  );
}
