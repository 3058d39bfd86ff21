/**
 * Modal dialogs on the native <dialog>: showModal() makes the rest of the page inert and traps
 * focus, Esc closes it; this module adds focus return to the opener, backdrop clicks and a form
 * helper with inline errors and a busy state.
 */
import { h, icon, ICONS } from "../dom.js";

let counter = 0;
/** Where focus goes when the open dialog closes, if not back to its opener (see focusAfterDialog). */
let nextFocus: HTMLElement | undefined;

/**
 * Asks for focus to land on `el` once the open dialog closes, instead of on the element that
 * opened it: a dialog that navigates ("Start" opens the new conversation) hands focus onwards.
 * Without an open dialog, focuses `el` right away.
 */
export function focusAfterDialog(el: HTMLElement): void {
  if (document.querySelector("dialog[open]")) nextFocus = el;
  else el.focus({ preventScroll: true });
}

export interface DialogHandle {
  dialog: HTMLDialogElement;
  close(): void;
}

export function openDialog(options: { title: string; description?: string; content: HTMLElement[]; className?: string; onClose?: () => void }): DialogHandle {
  const opener = document.activeElement instanceof HTMLElement ? document.activeElement : null;
  const id = `dialog-${++counter}`;
  const closeButton = h("button", { type: "button", class: "icon-btn dialog-close", "aria-label": "Close" }, icon(ICONS.close));
  const dialog = h(
    "dialog",
    { class: `dialog ${options.className ?? ""}`.trim(), "aria-labelledby": `${id}-title`, ...(options.description ? { "aria-describedby": `${id}-desc` } : {}) },
    h("div", { class: "dialog-header" }, h("h2", { id: `${id}-title`, class: "dialog-title" }, options.title), closeButton),
    options.description ? h("p", { id: `${id}-desc`, class: "dialog-desc" }, options.description) : null,
    ...options.content,
  );
  const close = (): void => {
    if (dialog.open) dialog.close();
  };
  closeButton.addEventListener("click", close);
  // A click on the backdrop lands on the <dialog> element itself.
  dialog.addEventListener("mousedown", (event) => {
    if (event.target === dialog) close();
  });
  dialog.addEventListener("close", () => {
    dialog.remove();
    options.onClose?.();
    const target = nextFocus?.isConnected ? nextFocus : opener;
    nextFocus = undefined;
    if (target?.isConnected) target.focus({ preventScroll: true });
  });
  document.body.append(dialog);
  dialog.showModal();
  const first = dialog.querySelector<HTMLElement>("[data-autofocus], input, textarea, select");
  (first ?? closeButton).focus();
  return { dialog, close };
}

export interface FormDialogOptions {
  title: string;
  description?: string;
  fields: HTMLElement[];
  submitLabel: string;
  danger?: boolean;
  /** Resolves when done (the dialog closes); rejects or returns a string to show as the error. */
  onSubmit(form: HTMLFormElement): Promise<string | void>;
}

export function formDialog(options: FormDialogOptions): DialogHandle {
  const error = h("p", { class: "form-error", role: "alert" });
  const submit = h("button", { type: "submit", class: options.danger ? "btn btn-danger" : "btn btn-primary" }, options.submitLabel);
  const cancel = h("button", { type: "button", class: "btn btn-ghost" }, "Cancel");
  const form = h("form", { class: "dialog-form", novalidate: true }, ...options.fields, error, h("div", { class: "dialog-actions" }, cancel, submit));
  const handle = openDialog({ title: options.title, ...(options.description ? { description: options.description } : {}), content: [form] });
  cancel.addEventListener("click", handle.close);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (submit.disabled) return;
    const invalid = Array.from(form.querySelectorAll<HTMLInputElement>("input, textarea")).find((el) => !el.checkValidity() && !el.closest("[hidden]"));
    if (invalid) {
      error.textContent = invalid.dataset.error ?? invalid.validationMessage;
      invalid.setAttribute("aria-invalid", "true");
      invalid.focus();
      return;
    }
    error.textContent = "";
    submit.disabled = true;
    submit.setAttribute("aria-busy", "true");
    options.onSubmit(form).then(
      (message) => {
        if (typeof message === "string") showError(message);
        else handle.close();
      },
      (err: unknown) => showError(err instanceof Error ? err.message : String(err)),
    );
  });
  function showError(message: string): void {
    submit.disabled = false;
    submit.removeAttribute("aria-busy");
    error.textContent = message;
  }
  return handle;
}

/** A labelled text input for dialogs and forms. */
export function field(options: {
  label: string;
  name: string;
  hint?: string;
  type?: string;
  required?: boolean;
  value?: string;
  autocomplete?: string;
  pattern?: string;
  minlength?: number;
  maxlength?: number;
  placeholder?: string;
  error?: string;
  multiline?: boolean;
  autofocus?: boolean;
}): HTMLElement {
  const id = `f-${options.name}-${++counter}`;
  const common = {
    id, name: options.name, required: options.required, autocomplete: options.autocomplete ?? "off", placeholder: options.placeholder,
    maxlength: options.maxlength, "data-autofocus": options.autofocus, "data-error": options.error,
    "aria-describedby": options.hint ? `${id}-hint` : undefined, spellcheck: options.multiline ? undefined : "false",
  };
  const input = options.multiline
    ? h("textarea", { ...common, rows: 4 })
    : h("input", { ...common, type: options.type ?? "text", pattern: options.pattern, minlength: options.minlength, autocapitalize: "off" });
  if (options.value !== undefined) input.value = options.value;
  input.addEventListener("input", () => input.removeAttribute("aria-invalid"));
  return h(
    "div",
    { class: "field" },
    h("label", { for: id }, options.label),
    input,
    options.hint ? h("p", { id: `${id}-hint`, class: "field-hint" }, options.hint) : null,
  );
}
