import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { App } from "./App";
import { takeTokenFromUrl } from "./settings";
import { startTheme } from "./theme";
import "./dashboard.css";

takeTokenFromUrl();
startTheme();
createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <App />
  </StrictMode>,
);
