import { createContext, useContext, useEffect, useLayoutEffect, useMemo, type ReactNode } from "react";
import { FrameBatcher, frameBatcher, getProgressClient, retainProgressClient, type ProgressClient } from "@progressd/client";

interface ProgressContextValue {
  client: ProgressClient;
  batcher: FrameBatcher;
}

const ProgressContext = createContext<ProgressContextValue | null>(null);

export interface ProgressProviderProps {
  /** The progressd server's base URL; default this page's origin. */
  server?: string;
  /** The token (JWT) when the server has auth on; changing it switches the connection. */
  token?: string | null;
  /** A client to use instead of the page's shared one for server (tests, custom options). */
  client?: ProgressClient;
  /** Batches re-renders; default one per animation frame. */
  batcher?: FrameBatcher;
  children?: ReactNode;
}

/**
 * Gives the hooks below one shared client: every provider on the page for
 * the same server uses the same client, and so one connection.
 */
export function ProgressProvider({ server, token, client: given, batcher, children }: ProgressProviderProps) {
  const client = useMemo(() => given ?? getProgressClient({ server, token }), [given, server]);
  // Layout effects run before the children's effects subscribe: the first
  // connection already carries the token.
  useLayoutEffect(() => {
    client.setToken(token ?? null);
  }, [client, token]);
  useEffect(() => (given ? undefined : retainProgressClient(client)), [client, given]);
  const value = useMemo(() => ({ client, batcher: batcher ?? frameBatcher }), [client, batcher]);
  return <ProgressContext.Provider value={value}>{children}</ProgressContext.Provider>;
}

export function useProgressContext(): ProgressContextValue {
  const v = useContext(ProgressContext);
  if (!v) throw new Error("progressd: wrap your components in <ProgressProvider>");
  return v;
}

/** The page's ProgressClient (for the HTTP API: client.api.createJob, cancelJob, …). */
export function useProgressClient(): ProgressClient {
  return useProgressContext().client;
}
