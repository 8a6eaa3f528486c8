import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { getProgressClient } from "@progressd/client";
import { App } from "./App";
import { prefetchFirstPage } from "./JobList";
import { readToken, takeTokenFromUrl } from "./settings";
import { startTheme } from "./theme";
import "./dashboard.css";

takeTokenFromUrl();
startTheme();
// The page's shared client (ProgressProvider takes the same one): the list's
// first page is requested now, not after the first render.
prefetchFirstPage(getProgressClient({ token: readToken() }));
createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <App />
  </StrictMode>,
);
