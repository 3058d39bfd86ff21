/**
 * Attachments in the conversation: the upload tray above the composer (progress, cancel, retry),
 * inline images drawn from the thumbnail the sender made, file cards with name, size and
 * download, and the image viewer, which fetches the full file on a short-lived URL.
 */
import type { AttachmentBody } from "../../../client/index.js";
import { h, icon, ICONS } from "../dom.js";
import { base64, formatBytes } from "../format.js";
import type { FileIntents } from "../intents.js";
import type { UploadView } from "../state.js";
import { toast } from "./toast.js";

const FILE_ICON = '<path d="M14 3H7a2 2 0 0 0-2 2v14a2 2 0 0 0 2 2h10a2 2 0 0 0 2-2V8z"/><path d="M14 3v5h5"/>';
export const CLIP_ICON = '<path d="m21 12-8.6 8.6a5.5 5.5 0 0 1-7.8-7.8l8.6-8.6a3.7 3.7 0 0 1 5.2 5.2l-8.6 8.6a1.8 1.8 0 0 1-2.6-2.6l7.9-7.9"/>';
const DOWNLOAD_ICON = '<path d="M12 3v12"/><path d="m7 10 5 5 5-5"/><path d="M5 21h14"/>';
/** Inline images are drawn at most this wide (px); the thumbnail's own aspect ratio is kept. */
const INLINE_MAX_W = 280;
const INLINE_MAX_H = 320;

const dataUrls = new Map<string, string>();

/** The thumbnail as a data: URL, made once per attachment. */
function thumbnailUrl(a: AttachmentBody): string | undefined {
  if (a.thumbnail.byteLength === 0) return undefined;
  let url = dataUrls.get(a.attachment_id);
  if (!url) {
    url = `data:${a.thumbnail_type || "image/jpeg"};base64,${base64(a.thumbnail)}`;
    dataUrls.set(a.attachment_id, url);
  }
  return url;
}

/** An attachment inside a message bubble. */
export function attachmentView(files: FileIntents, a: AttachmentBody): HTMLElement {
  const thumb = a.content_type.startsWith("image/") ? thumbnailUrl(a) : undefined;
  if (thumb) {
    const ratio = a.width > 0 && a.height > 0 ? a.height / a.width : 0.75;
    const w = Math.min(INLINE_MAX_W, a.width || INLINE_MAX_W, INLINE_MAX_H / ratio);
    const img = h("img", { src: thumb, alt: a.caption || a.file_name, width: Math.round(w), height: Math.round(w * ratio), class: "att-thumb", "data-testid": "attachment-thumbnail" });
    const open = h("button", { type: "button", class: "att-image", "aria-label": `Open image ${a.file_name}` }, img);
    open.addEventListener("click", () => openImageViewer(files, a, thumb));
    return h("div", { class: "att" }, open, a.caption ? h("span", { class: "msg-text att-caption" }, a.caption) : null);
  }
  const download = h("button", { type: "button", class: "att-download icon-btn", "aria-label": `Download ${a.file_name}`, title: "Download" }, icon(DOWNLOAD_ICON));
  download.addEventListener("click", () => void downloadAttachment(files, a));
  return h("div", { class: "att" },
    h("div", { class: "att-file", "data-testid": "attachment-file" },
      h("span", { class: "att-file-icon", "aria-hidden": "true" }, icon(FILE_ICON)),
      h("span", { class: "att-file-text" }, h("span", { class: "att-file-name" }, a.file_name), h("span", { class: "att-file-size" }, formatBytes(a.size_bytes))),
      download),
    a.caption ? h("span", { class: "msg-text att-caption" }, a.caption) : null);
}

async function downloadAttachment(files: FileIntents, a: AttachmentBody): Promise<void> {
  try {
    const url = await files.url(a.attachment_id);
    const link = h("a", { href: url, download: a.file_name, rel: "noopener", hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
  } catch (err) {
    toast(`Download failed: ${err instanceof Error ? err.message : String(err)}`, "error");
  }
}

/** The full image over the app: the thumbnail at once, the file as soon as it arrives. */
export function openImageViewer(files: FileIntents, a: AttachmentBody, thumb: string): void {
  const returnTo = document.activeElement as HTMLElement | null;
  const img = h("img", { class: "viewer-img", src: thumb, alt: a.caption || a.file_name, "data-testid": "viewer-image", "data-loaded": "thumbnail" });
  const close = h("button", { type: "button", class: "icon-btn viewer-close", "aria-label": "Close image" }, icon(ICONS.close));
  const download = h("button", { type: "button", class: "btn btn-ghost btn-sm viewer-download" }, icon(DOWNLOAD_ICON), h("span", {}, "Download"));
  download.addEventListener("click", () => void downloadAttachment(files, a));
  const overlay = h("div", { class: "viewer", role: "dialog", "aria-modal": "true", "aria-label": a.file_name },
    h("div", { class: "viewer-bar" }, h("span", { class: "viewer-name" }, a.file_name, " · ", formatBytes(a.size_bytes)), download, close),
    h("div", { class: "viewer-stage" }, img));
  const done = () => {
    overlay.remove();
    document.removeEventListener("keydown", onKey, true);
    returnTo?.focus();
  };
  const onKey = (e: KeyboardEvent) => {
    if (e.key === "Escape") {
      e.preventDefault();
      done();
    }
  };
  close.addEventListener("click", done);
  overlay.addEventListener("click", (e) => { if (e.target === overlay || (e.target as HTMLElement).classList.contains("viewer-stage")) done(); });
  document.addEventListener("keydown", onKey, true);
  document.body.append(overlay);
  close.focus();
  files.url(a.attachment_id).then((url) => {
    const full = new Image();
    full.onload = () => {
      img.src = url;
      img.dataset.loaded = "full";
    };
    full.src = url;
  }, (err: unknown) => toast(`The image could not be loaded: ${err instanceof Error ? err.message : String(err)}`, "error"));
}

/** The files going up in this conversation, above the composer. */
export function renderUploadTray(tray: HTMLElement, items: UploadView[], files: FileIntents): void {
  const sig = JSON.stringify(items.map((i) => [i.key, i.state, Math.floor((100 * i.loaded) / Math.max(1, i.total)), i.error, !!i.preview]));
  if (tray.dataset.sig === sig) return;
  tray.dataset.sig = sig;
  tray.hidden = items.length === 0;
  tray.replaceChildren(...items.map((item) => {
    const pct = Math.floor((100 * item.loaded) / Math.max(1, item.total));
    const label = item.state === "failed" ? "Not sent" : item.state === "preparing" ? "Preparing…" : item.state === "sending" ? "Sending…" : `${pct}% · ${formatBytes(item.loaded)} of ${formatBytes(item.total)}`;
    const bar = h("progress", { class: "upload-progress", max: 100, value: pct, "aria-label": `Uploading ${item.fileName}`, "data-testid": "upload-progress" });
    const actions: HTMLElement[] = [];
    if (item.state === "failed") {
      const retry = h("button", { type: "button", class: "link-btn" }, "Retry");
      retry.addEventListener("click", () => files.retry(item.key));
      actions.push(retry);
    }
    const cancel = h("button", { type: "button", class: "icon-btn upload-cancel", "aria-label": `Cancel ${item.fileName}` }, icon(ICONS.close));
    cancel.addEventListener("click", () => files.cancel(item.key));
    actions.push(cancel);
    return h("div", { class: `upload-item upload-${item.state}`, "data-testid": "upload-item", title: item.error ?? "" },
      item.preview ? h("img", { class: "upload-preview", src: item.preview, alt: "" }) : h("span", { class: "upload-preview att-file-icon", "aria-hidden": "true" }, icon(FILE_ICON)),
      h("div", { class: "upload-body" },
        h("div", { class: "upload-name" }, item.fileName),
        bar,
        h("div", { class: "upload-status" }, label)),
      ...actions);
  }));
}
