/** The sign-in / sign-up screen. */
import { h } from "../dom.js";
import { field } from "./dialog.js";

export interface Credentials {
  mode: "login" | "register";
  username: string;
  password: string;
  displayName: string;
}

export function logo(large = false): HTMLElement {
  return h(
    "div",
    { class: large ? "brand brand-lg" : "brand" },
    h("span", { class: "brand-mark", "aria-hidden": "true" }),
    h("span", { class: "brand-name" }, "edgechat"),
  );
}

/**
 * Renders the form into `root`. `submit` resolves once signed in, or rejects with an error whose
 * message is shown under the form.
 */
export function renderLogin(root: HTMLElement, submit: (c: Credentials) => Promise<void>, notice?: string): void {
  let mode: Credentials["mode"] = "login";
  const title = h("h1", { class: "auth-title", id: "auth-title" });
  const subtitle = h("p", { class: "auth-subtitle" });
  const displayName = field({ label: "Display name", name: "display_name", autocomplete: "name", maxlength: 64, hint: "Optional. How others see you." });
  const username = field({
    label: "Username", name: "username", autocomplete: "username", required: true, pattern: "[A-Za-z0-9_.\\-]{3,32}", maxlength: 32,
    error: "A username is 3–32 letters, digits, dots, dashes or underscores.", autofocus: true,
  });
  const passwordField = field({ label: "Password", name: "password", type: "password", autocomplete: "current-password", required: true, minlength: 8, error: "Passwords are at least 8 characters." });
  const error = h("p", { class: "form-error", role: "alert" }, notice ?? "");
  const button = h("button", { type: "submit", class: "btn btn-primary btn-block" });
  const switchText = h("span");
  const switchButton = h("button", { type: "button", class: "link-btn" });
  const form = h("form", { class: "auth-form", novalidate: true, "aria-labelledby": "auth-title" }, username, displayName, passwordField, error, button);
  const card = h("main", { class: "auth" },
    h("div", { class: "auth-card" }, logo(true), title, subtitle, form, h("p", { class: "auth-switch" }, switchText, " ", switchButton)),
    h("p", { class: "auth-footer" }, "Real-time chat on Cloudflare Workers and Durable Objects."),
  );

  function apply(): void {
    const register = mode === "register";
    title.textContent = register ? "Create your account" : "Welcome back";
    subtitle.textContent = register ? "Pick a username; your friends find you by it." : "Sign in to pick up your conversations.";
    displayName.hidden = !register;
    const password = passwordField.querySelector("input")!;
    password.autocomplete = register ? "new-password" : "current-password";
    // Login accepts whatever the account was created with; sign-up enforces the server's rules.
    password.minLength = register ? 8 : 1;
    button.textContent = register ? "Create account" : "Sign in";
    switchText.textContent = register ? "Already have an account?" : "New to edgechat?";
    switchButton.textContent = register ? "Sign in" : "Create an account";
  }

  switchButton.addEventListener("click", () => {
    mode = mode === "login" ? "register" : "login";
    error.textContent = "";
    apply();
    form.querySelector<HTMLInputElement>("input[name=username]")!.focus();
  });

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (button.disabled) return;
    const inputs = Array.from(form.querySelectorAll<HTMLInputElement>("input")).filter((el) => !el.closest("[hidden]"));
    const invalid = inputs.find((el) => !el.checkValidity());
    if (invalid) {
      error.textContent = invalid.dataset.error ?? invalid.validationMessage;
      invalid.setAttribute("aria-invalid", "true");
      invalid.focus();
      return;
    }
    const value = (name: string): string => form.querySelector<HTMLInputElement>(`input[name=${name}]`)!.value;
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    error.textContent = "";
    submit({ mode, username: value("username").trim(), password: value("password"), displayName: value("display_name").trim() }).catch((err: unknown) => {
      button.disabled = false;
      button.removeAttribute("aria-busy");
      error.textContent = err instanceof Error ? err.message : String(err);
    });
  });

  apply();
  root.replaceChildren(card);
  form.querySelector<HTMLInputElement>("input[name=username]")!.focus();
}
