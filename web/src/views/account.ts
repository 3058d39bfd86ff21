/**
 * Account settings: display name, avatar (with a preview before it is saved), password, and
 * deleting the account behind a password confirmation.
 */
import type { ViewModel } from "../intents.js";
import { errorText } from "../errors.js";
import { h } from "../dom.js";
import { avatar } from "./avatar.js";
import { field, formDialog, openDialog } from "./dialog.js";
import { toast } from "./toast.js";

export function accountDialog(model: ViewModel): void {
  const { state, intents } = model;
  const me = state.me;
  const status = h("p", { class: "form-error", role: "alert", "data-testid": "account-status" });
  const busy = async (button: HTMLButtonElement, run: () => Promise<unknown>, done?: string): Promise<void> => {
    button.disabled = true;
    status.textContent = "";
    try {
      await run();
      if (done) toast(done);
    } catch (err) {
      status.textContent = errorText(err);
    } finally {
      button.disabled = false;
    }
  };

  // Name.
  const nameField = field({ label: "Display name", name: "display_name", value: me.display_name, maxlength: 64, required: true, autocomplete: "name", hint: "How others see you. Your username stays @" + me.username + "." });
  const nameInput = nameField.querySelector("input")!;
  const saveName = h("button", { type: "submit", class: "btn btn-primary" }, "Save name");
  const nameForm = h("form", { class: "dialog-form", novalidate: true, "aria-label": "Your name" }, nameField, h("div", { class: "dialog-actions" }, saveName));
  nameForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const value = nameInput.value.trim();
    if (value === "") {
      status.textContent = "Type a name others will see.";
      nameInput.focus();
      return;
    }
    void busy(saveName, () => intents.rename(value), "Name saved");
  });

  // Avatar: choose, preview, then save.
  let chosen: File | undefined;
  let previewUrl: string | undefined;
  const preview = h("span", { class: "avatar-preview" }, avatar(me.user_id, me.display_name || me.username, { size: "lg", src: intents.avatarUrl(me.user_id) }));
  const fileInput = h("input", { type: "file", accept: "image/png,image/jpeg,image/webp,image/gif", class: "sr-only", id: "avatar-file", "data-testid": "avatar-file" });
  const choose = h("label", { for: "avatar-file", class: "btn" }, "Choose picture…");
  const saveAvatar = h("button", { type: "button", class: "btn btn-primary", disabled: true }, "Save picture");
  const removeAvatar = h("button", { type: "button", class: "btn btn-ghost", hidden: !me.avatar_url }, "Remove picture");
  fileInput.addEventListener("change", () => {
    chosen = fileInput.files?.[0];
    if (previewUrl) URL.revokeObjectURL(previewUrl);
    previewUrl = chosen ? URL.createObjectURL(chosen) : undefined;
    preview.replaceChildren(avatar(me.user_id, me.display_name || me.username, { size: "lg", src: previewUrl ?? intents.avatarUrl(me.user_id) }));
    saveAvatar.disabled = !chosen;
  });
  saveAvatar.addEventListener("click", () => {
    if (!chosen) return;
    const file = chosen;
    void busy(saveAvatar, async () => {
      await intents.setAvatar(file);
      saveAvatar.disabled = true;
      removeAvatar.hidden = false;
    }, "Picture saved");
  });
  removeAvatar.addEventListener("click", () => void busy(removeAvatar, async () => {
    await intents.removeAvatar();
    removeAvatar.hidden = true;
    preview.replaceChildren(avatar(me.user_id, me.display_name || me.username, { size: "lg" }));
  }, "Picture removed"));
  const avatarSection = h("div", { class: "avatar-editor" }, preview, h("div", { class: "avatar-editor-actions" }, fileInput, choose, saveAvatar, removeAvatar));

  // Password.
  const current = field({ label: "Current password", name: "current_password", type: "password", required: true, autocomplete: "current-password" });
  const next = field({ label: "New password", name: "new_password", type: "password", required: true, minlength: 8, autocomplete: "new-password", hint: "At least 8 characters. Your other devices will be signed out." });
  const changePassword = h("button", { type: "submit", class: "btn" }, "Change password");
  const passwordForm = h("form", { class: "dialog-form", novalidate: true, "aria-label": "Change password" }, current, next, h("div", { class: "dialog-actions" }, changePassword));
  passwordForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const cur = current.querySelector("input")!;
    const nxt = next.querySelector("input")!;
    if (!cur.value || nxt.value.length < 8) {
      status.textContent = !cur.value ? "Type your current password." : "The new password needs at least 8 characters.";
      return;
    }
    void busy(changePassword, async () => {
      const ended = await intents.changePassword(cur.value, nxt.value);
      cur.value = nxt.value = "";
      toast(ended > 0 ? `Password changed; ${ended} other ${ended === 1 ? "session was" : "sessions were"} signed out` : "Password changed");
    });
  });

  // Deleting the account.
  const deleteButton = h("button", { type: "button", class: "btn btn-danger" }, "Delete account…");
  const danger = h("div", { class: "settings-section danger-zone" },
    h("h3", {}, "Delete account"),
    h("p", {}, "Your profile, devices, files and the text of every message you sent are deleted for everyone. This cannot be undone."),
    deleteButton);

  const done = h("button", { type: "button", class: "btn btn-primary" }, "Done");
  const handle = openDialog({
    title: "Account",
    className: "account-dialog",
    content: [
      nameForm,
      h("div", { class: "settings-section" }, h("h3", {}, "Picture"), avatarSection),
      h("div", { class: "settings-section" }, h("h3", {}, "Password"), passwordForm),
      danger,
      status,
      h("div", { class: "dialog-actions" }, done),
    ],
    onClose: () => {
      if (previewUrl) URL.revokeObjectURL(previewUrl);
    },
  });
  done.addEventListener("click", () => handle.close());
  deleteButton.addEventListener("click", () => {
    handle.close();
    deleteAccountDialog(model);
  });
}

/** The last step: the password again, then the account is gone (the app signs out). */
export function deleteAccountDialog({ intents }: ViewModel): void {
  formDialog({
    title: "Delete your account?",
    description: "Everyone will see your messages as deleted, from \"Deleted account\". Your username becomes free once the deletion has finished. Type your password to confirm.",
    fields: [field({ label: "Password", name: "password", type: "password", required: true, autocomplete: "current-password", autofocus: true, error: "Type your password to confirm." })],
    submitLabel: "Delete my account",
    danger: true,
    onSubmit: async (form) => {
      const password = form.querySelector<HTMLInputElement>("[name=password]")!.value;
      try {
        await intents.deleteAccount(password);
      } catch (err) {
        return errorText(err);
      }
    },
  });
}
