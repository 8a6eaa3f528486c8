import { useEffect, useState } from "react";
import { ApiError, type PipelineInfo, type ProgressClient } from "@progressd/client";
import { useProgressClient } from "@progressd/react";

/**
 * The server's pipelines (GET /api/v1/pipelines), fetched again when the
 * token changes. undefined until known, and when the server refuses to
 * say (no token yet): the picker stays hidden until it can be used.
 */
export function usePipelines(client: ProgressClient, token: string | null): PipelineInfo[] | undefined {
  const [pipelines, setPipelines] = useState<PipelineInfo[] | undefined>(undefined);
  useEffect(() => {
    const ac = new AbortController();
    client.api
      .listPipelines(ac.signal)
      .then((ps) => setPipelines(ps))
      .catch(() => !ac.signal.aborted && setPipelines(undefined));
    return () => ac.abort();
  }, [client, token]);
  return pipelines;
}

/**
 * Start a job in project from a pipeline picker, with one required field
 * per param of the chosen pipeline. Renders nothing when the server runs
 * no pipelines.
 */
export function StartJob({
  project,
  pipelines,
  onError,
  onAuthError,
}: {
  project: string;
  pipelines: PipelineInfo[] | undefined;
  onError: (message: string | null) => void;
  onAuthError: () => void;
}) {
  const client = useProgressClient();
  const [chosen, setChosen] = useState<string>("");
  const [values, setValues] = useState<Record<string, string>>({});
  const [busy, setBusy] = useState(false);
  if (!pipelines || pipelines.length === 0) return null;
  const pipeline = pipelines.find((p) => p.name === chosen) ?? pipelines[0]!;

  const start = async () => {
    setBusy(true);
    onError(null);
    try {
      const params: Record<string, string> = {};
      for (const k of pipeline.params) params[k] = values[k] ?? "";
      const job = await client.api.createJob({
        project,
        pipeline: pipeline.name,
        ...(pipeline.params.length > 0 ? { params } : {}),
      });
      client.store.accept(job);
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) onAuthError();
      onError(e instanceof Error ? e.message : String(e));
    } finally {
      setBusy(false);
    }
  };

  return (
    <form
      className="start"
      aria-label="Start a job"
      onSubmit={(e) => {
        e.preventDefault();
        void start();
      }}
    >
      <label className="start__field">
        <span className="small muted">Pipeline</span>
        <select value={pipeline.name} onChange={(e) => setChosen(e.target.value)} title={pipeline.description}>
          {pipelines.map((p) => (
            <option key={p.name} value={p.name}>
              {p.name}
            </option>
          ))}
        </select>
      </label>
      {pipeline.params.map((k) => (
        <label key={pipeline.name + "/" + k} className="start__field">
          <span className="small muted">{k}</span>
          <input
            name={k}
            required
            value={values[k] ?? ""}
            onChange={(e) => setValues((v) => ({ ...v, [k]: e.target.value }))}
            size={12}
          />
        </label>
      ))}
      <button type="submit" className="btn btn--primary" disabled={busy}>
        {busy ? "Starting…" : "Start job"}
      </button>
    </form>
  );
}
