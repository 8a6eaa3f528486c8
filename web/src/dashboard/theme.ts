// Light or dark: the person's choice (remembered, shared by tabs), else
// the system's prefers-color-scheme, followed live. The result is
// <html data-theme="light|dark">, which dashboard.css keys its colours on.

import { onSettingsChange, themeChoice, type ThemeChoice } from "./settings";

const dark = typeof matchMedia === "function" ? matchMedia("(prefers-color-scheme: dark)") : null;

/** The theme in force for a choice. */
export function resolveTheme(choice: ThemeChoice, systemDark = !!dark?.matches): "light" | "dark" {
  return choice === "auto" ? (systemDark ? "dark" : "light") : choice;
}

function apply(): void {
  const t = resolveTheme(themeChoice());
  const root = document.documentElement;
  root.dataset.theme = t;
  root.style.colorScheme = t;
}

/** Sets the theme now and keeps it current; call once before the first render. */
export function startTheme(): void {
  apply();
  dark?.addEventListener("change", apply);
  onSettingsChange(apply);
}

/** The other theme than the one in force: what the topbar's toggle switches to. */
export function otherTheme(choice: ThemeChoice): "light" | "dark" {
  return resolveTheme(choice) === "dark" ? "light" : "dark";
}
