/**
 * Files on their way into a conversation: each is thumbnailed (images), uploaded with progress,
 * then sent as an attachment message. A failed upload keeps its attachment id, so Retry resumes
 * where it stopped instead of starting over; Cancel aborts it and tells the server to drop it.
 *
 * The app's side of `Intents.files`: it writes what the upload tray draws into the state
 * (`ChatState.uploads`) and keeps the files and their abort controllers to itself. The bytes go
 * up from this tab (tabs.ts says why); the message that carries them goes through the tab that
 * holds the connection, like any send.
 */
import { attachmentContent, EdgechatError, UploadError } from "../../client/index.js";
import type { ChatClient } from "./chat-client.js";
import { base64 } from "./format.js";
import type { FileIntents } from "./intents.js";
import type { ChatState, UploadView } from "./state.js";

/** What the web app puts in a message's thumbnail: small enough to travel inline (≤ 16 KiB). */
const THUMB_MAX_BYTES = 16 * 1024;
const THUMB_EDGES = [320, 240, 160, 96];
const THUMB_QUALITIES = [0.72, 0.55, 0.4];

interface Thumbnail {
  bytes: Uint8Array;
  type: string;
  width: number;
  height: number;
}

/** What the tray does not need to see. */
interface Job {
  view: UploadView;
  file: File;
  controller: AbortController;
  attachmentId: string | undefined;
  /** Made once; `null` when the file is not an image this browser can draw. */
  thumb: Thumbnail | null | undefined;
}

export class Uploads implements FileIntents {
  private readonly jobs = new Map<string, Job>();
  private counter = 0;

  constructor(
    private readonly client: ChatClient,
    private readonly state: ChatState,
    private readonly changed: () => void,
    private readonly failed: (message: string) => void,
  ) {}

  add(channelId: string, files: File[]): void {
    for (const file of files) {
      const view: UploadView = {
        key: `up-${++this.counter}`, channelId, fileName: file.name || "file", state: "preparing", loaded: 0, total: file.size,
        error: undefined, preview: undefined,
      };
      const job: Job = { view, file, controller: new AbortController(), attachmentId: undefined, thumb: undefined };
      this.jobs.set(view.key, job);
      this.state.uploads.set(view.key, view);
      void this.run(job);
    }
    this.changed();
  }

  cancel(key: string): void {
    const job = this.jobs.get(key);
    if (!job) return;
    job.controller.abort();
    this.forget(key);
    if (job.attachmentId) void this.client.attachments.cancel(job.attachmentId).catch(() => {});
    this.changed();
  }

  retry(key: string): void {
    const job = this.jobs.get(key);
    if (!job || job.view.state !== "failed") return;
    job.controller = new AbortController();
    job.view.error = undefined;
    void this.run(job);
  }

  async url(attachmentId: string): Promise<string> {
    return (await this.client.attachments.url(attachmentId)).url;
  }

  /** Stops every upload of this tab (signed out); the server sweeps what was left unsent. */
  stop(): void {
    for (const job of this.jobs.values()) job.controller.abort();
    for (const key of [...this.jobs.keys()]) this.forget(key);
  }

  private forget(key: string): void {
    this.jobs.delete(key);
    this.state.uploads.delete(key);
  }

  private async run(job: Job): Promise<void> {
    const { view, file } = job;
    try {
      if (job.thumb === undefined) {
        job.thumb = (file.type.startsWith("image/") ? await makeThumbnail(file) : undefined) ?? null;
        if (job.thumb) view.preview = `data:${job.thumb.type};base64,${base64(job.thumb.bytes)}`;
      }
      view.state = "uploading";
      this.changed();
      const onProgress = ({ loaded, total, attachment_id }: { loaded: number; total: number; attachment_id: string }) => {
        view.loaded = loaded;
        view.total = total;
        job.attachmentId = attachment_id;
        this.changed();
      };
      const options = { onProgress, signal: job.controller.signal };
      const uploaded = job.attachmentId
        ? await this.client.attachments.resume(job.attachmentId, file, options)
        : await this.client.attachments.upload(file, {
          ...options, channelId: view.channelId, filename: view.fileName, contentType: file.type || "application/octet-stream",
        });
      if (!this.jobs.has(view.key)) return; // cancelled as it finished
      view.state = "sending";
      this.changed();
      const thumb = job.thumb;
      await this.client.send(view.channelId, attachmentContent(uploaded, thumb
        ? { thumbnail: thumb.bytes, thumbnail_type: thumb.type, width: thumb.width, height: thumb.height }
        : {}));
      this.forget(view.key);
      this.changed();
    } catch (err) {
      if (!this.jobs.has(view.key)) return; // cancelled
      if (err instanceof UploadError && err.attachmentId) job.attachmentId = err.attachmentId;
      // A refused file (type, size, hash) cannot succeed by resuming: start over on retry.
      if (err instanceof EdgechatError && !err.retryable && err.code !== "aborted" && err.code !== "network_error") job.attachmentId = undefined;
      view.state = "failed";
      view.error = err instanceof Error ? err.message : String(err);
      this.changed();
      this.failed(`${view.fileName} was not sent: ${view.error}`);
    }
  }
}

/**
 * A small preview made in the browser: the image drawn on a canvas, long edge ≤ 320 px, as WebP
 * (JPEG where the browser cannot encode WebP), shrunk until it fits the inline limit.
 */
async function makeThumbnail(file: File): Promise<Thumbnail | undefined> {
  let bitmap: ImageBitmap;
  try {
    bitmap = await createImageBitmap(file);
  } catch {
    return undefined; // a format this browser cannot decode (HEIC on most): a file card then
  }
  try {
    for (const edge of THUMB_EDGES) {
      const scale = Math.min(1, edge / Math.max(bitmap.width, bitmap.height));
      const w = Math.max(1, Math.round(bitmap.width * scale));
      const h = Math.max(1, Math.round(bitmap.height * scale));
      const canvas = document.createElement("canvas");
      canvas.width = w;
      canvas.height = h;
      canvas.getContext("2d")!.drawImage(bitmap, 0, 0, w, h);
      for (const quality of THUMB_QUALITIES) {
        const blob = await new Promise<Blob | null>((resolve) => canvas.toBlob(resolve, "image/webp", quality));
        const type = blob?.type === "image/webp" ? "image/webp" : "image/jpeg";
        const out = blob?.type === "image/webp" ? blob : await new Promise<Blob | null>((resolve) => canvas.toBlob(resolve, "image/jpeg", quality));
        if (out && out.size <= THUMB_MAX_BYTES) {
          return { bytes: new Uint8Array(await out.arrayBuffer()), type, width: bitmap.width, height: bitmap.height };
        }
      }
    }
    return undefined;
  } finally {
    bitmap.close();
  }
}
