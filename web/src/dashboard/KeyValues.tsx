// A job's metadata and result (JSON objects) as key/value lines a person
// can read: strings as text (a web address as a link), numbers and
// booleans as written, nested objects as their own indented list.

/** A string that is an http(s) address, which is safe to link to. */
export function isLink(v: string): boolean {
  if (!/^https?:\/\//i.test(v)) return false;
  try {
    new URL(v);
    return true;
  } catch {
    return false;
  }
}

function Value({ v, depth }: { v: unknown; depth: number }) {
  if (v === null || v === undefined) return <span className="muted">null</span>;
  if (typeof v === "string") {
    return isLink(v) ? (
      <a href={v} target="_blank" rel="noopener noreferrer nofollow" className="kv__link">
        {v}
      </a>
    ) : (
      <span className="kv__text">{v}</span>
    );
  }
  if (typeof v === "number" || typeof v === "boolean") return <code>{String(v)}</code>;
  if (Array.isArray(v)) {
    if (v.every((x) => x === null || typeof x !== "object")) {
      return <span className="kv__text">{v.map((x) => String(x)).join(", ")}</span>;
    }
    return depth >= 3 ? <code>{JSON.stringify(v)}</code> : <KeyValues value={Object.fromEntries(v.map((x, i) => [String(i), x]))} depth={depth + 1} />;
  }
  if (typeof v === "object") return depth >= 3 ? <code>{JSON.stringify(v)}</code> : <KeyValues value={v as Record<string, unknown>} depth={depth + 1} />;
  return <code>{String(v)}</code>;
}

export function KeyValues({ value, depth = 0, label }: { value: Record<string, unknown>; depth?: number; label?: string }) {
  const entries = Object.entries(value);
  if (entries.length === 0) return <p className="muted small">empty</p>;
  return (
    <dl className={"kv" + (depth > 0 ? " kv--nested" : "")} aria-label={label}>
      {entries.map(([k, v]) => (
        <div key={k} className="kv__row">
          <dt>{k}</dt>
          <dd>
            <Value v={v} depth={depth} />
          </dd>
        </div>
      ))}
    </dl>
  );
}
