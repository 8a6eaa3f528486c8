import { useId, useState } from "react";
import { decodeToken } from "@progressd/client";

export function TokenPanel(props: {
  token: string | null;
  needed: boolean;
  onSave: (t: string | null) => void;
  onClose?: () => void;
}) {
  const [value, setValue] = useState(props.token ?? "");
  const id = useId();
  const claims = decodeToken(value.trim());
  const exp = claims?.exp ? new Date(claims.exp * 1000) : null;
  return (
    <section className={"panel token" + (props.needed ? " token--needed" : "")} aria-labelledby={id + "-t"}>
      <div className="token__text">
        <h2 id={id + "-t"}>{!props.needed ? "Token" : props.token ? "The server refused this token" : "This server needs a token"}</h2>
        <p className="muted small">
          {props.needed && props.token ? "It may have expired, or been made with another secret. " : ""}
          Paste a token from <code>progressd token --sub NAME</code>. It is kept in this browser only
          (localStorage); <code>?token=…</code> in the address works too.
        </p>
      </div>
      <form
        className="token__form"
        onSubmit={(e) => {
          e.preventDefault();
          props.onSave(value.trim() || null);
        }}
      >
        <label htmlFor={id} className="sr-only">
          Token
        </label>
        <input
          id={id}
          type="password"
          autoComplete="off"
          spellCheck={false}
          value={value}
          onChange={(e) => setValue(e.target.value)}
          placeholder="eyJhbGciOi…"
        />
        <button type="submit" className="btn btn--primary">
          Use token
        </button>
        {props.token && (
          <button type="button" className="btn" onClick={() => props.onSave(null)}>
            Sign out
          </button>
        )}
        {props.onClose && (
          <button type="button" className="btn btn--ghost" onClick={props.onClose}>
            Close
          </button>
        )}
      </form>
      {value.trim() && (
        <p className="small muted">
          {claims?.sub ? (
            <>
              Acts as <strong>{claims.sub}</strong>
              {claims.admin ? " (admin)" : ""}
              {exp ? `, expires ${exp.toLocaleString()}` : ""}.
            </>
          ) : (
            "This does not look like a progressd token."
          )}
        </p>
      )}
    </section>
  );
}
