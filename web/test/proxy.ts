// A TCP proxy in front of a real progressd server, to give the clients the
// network faults they must survive: "pass" forwards bytes both ways;
// "refuse" closes every new connection at once (the server is down);
// "503" answers every new connection with an HTTP 503 (a load balancer
// with no healthy backend); "hang" accepts and never answers (a stuck
// server). cut() drops the connections already open.
import { createServer, connect, type Server, type Socket } from "node:net";

export type ProxyMode = "pass" | "refuse" | "503" | "hang";

export interface Proxy {
  url: string;
  mode: ProxyMode;
  /** Connections accepted since start, by the mode they were handled in. */
  counts: Record<ProxyMode, number>;
  /** Drops every open connection (both sides). */
  cut(): void;
  /** Switches mode and drops the open connections, so kept-alive ones obey too. */
  set(mode: ProxyMode): void;
  close(): Promise<void>;
}

export async function startProxy(target: string): Promise<Proxy> {
  const t = new URL(target);
  const open = new Set<Socket>();
  const track = (s: Socket) => {
    open.add(s);
    s.on("close", () => open.delete(s));
    s.on("error", () => s.destroy());
  };
  const proxy: Proxy = {
    url: "",
    mode: "pass",
    counts: { pass: 0, refuse: 0, "503": 0, hang: 0 },
    cut() {
      for (const s of open) s.destroy();
    },
    set(mode) {
      proxy.mode = mode;
      proxy.cut();
    },
    close: () => new Promise<void>((res) => {
      proxy.cut();
      server.close(() => res());
    }),
  };
  const server: Server = createServer((client) => {
    track(client);
    const mode = proxy.mode;
    proxy.counts[mode]++;
    if (mode === "refuse") {
      client.destroy();
      return;
    }
    if (mode === "hang") {
      client.resume(); // read and drop what it sends; answer nothing
      return;
    }
    if (mode === "503") {
      // Read the request (any of it) before answering, as a server would.
      client.once("data", () => {
        const body = '{"error":{"code":"unavailable","message":"no backend (test proxy)"}}';
        client.end(`HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`);
      });
      return;
    }
    const upstream = connect(Number(t.port), t.hostname);
    track(upstream);
    client.pipe(upstream);
    upstream.pipe(client);
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
  });
  await new Promise<void>((res) => server.listen(0, "127.0.0.1", res));
  const a = server.address();
  if (!a || typeof a !== "object") throw new Error("proxy: no address");
  proxy.url = `http://127.0.0.1:${a.port}`;
  return proxy;
}
