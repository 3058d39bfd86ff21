/** Notifications in the UI: the settings switch and the one-time offer above the composer. */
import type { Intents } from "../intents.js";
import type { NotificationState } from "../push.js";
import { h } from "../dom.js";

/** The "Notifications on this device" switch for the privacy dialog. */
export function notificationsSetting(intents: Intents): HTMLElement {
  const id = "setting-notifications";
  const hint = h("span", { id: `${id}-hint`, class: "setting-hint" }, "Messages that arrive while edgechat is closed.");
  const box = h("input", { type: "checkbox", id, role: "switch", disabled: true, "aria-describedby": `${id}-hint` });
  const show = (state: NotificationState) => {
    box.checked = state === "on";
    box.disabled = state === "unsupported" || state === "blocked";
    if (state === "blocked") hint.textContent = "Blocked in this browser's site settings.";
    if (state === "unsupported") hint.textContent = "This browser cannot show notifications.";
  };
  void intents.notificationState().then(show);
  box.addEventListener("change", () => {
    box.disabled = true;
    const done = box.checked ? intents.enableNotifications() : intents.disableNotifications().then((): NotificationState => "off");
    done.then(show, (err: unknown) => {
      hint.textContent = err instanceof Error ? err.message : "Could not change notifications.";
      void intents.notificationState().then(show);
    });
  });
  return h("li", { class: "setting" },
    h("span", { class: "setting-text" }, h("label", { for: id, class: "setting-label" }, "Notifications on this device"), hint),
    box);
}

/**
 * After the first message sent from this browser: a small offer to turn notifications on, once.
 * The browser's own prompt comes only from the click on "Turn on".
 */
export function offerNotifications(intents: Intents): void {
  // Above the composer, in the page's flow: it covers nothing and stays until answered.
  const composer = document.querySelector(".composer");
  if (!composer?.parentElement) return;
  const yes = h("button", { type: "button", class: "btn btn-primary btn-sm" }, "Turn on");
  const no = h("button", { type: "button", class: "btn btn-ghost btn-sm" }, "Not now");
  const card = h("div", { class: "push-offer", role: "group", "aria-label": "Notifications" },
    h("span", { class: "push-offer-text" }, "Get notified of replies when edgechat is closed?"), yes, no);
  const close = () => card.remove();
  no.addEventListener("click", close);
  yes.addEventListener("click", () => {
    close();
    void intents.enableNotifications().catch(() => {});
  });
  composer.parentElement.insertBefore(card, composer);
}
