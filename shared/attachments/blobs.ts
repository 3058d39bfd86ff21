/**
 * Removing a blob from R2: the object, and an unfinished multipart upload's parts. Called after
 * the durable write that made the blob unreachable (delete for everyone, the orphan sweep), so a
 * failure here leaves garbage to retry, never a message pointing at nothing.
 */
import { bucketOfAttachment, jurisdictionOfAttachment } from "../bindings.js";
import { attachmentConfig } from "./config.js";
import { abortMultipartUpload } from "./s3.js";

export interface BlobRef {
  attachment_id: string;
  upload_id: string;
  completed_at: number | null;
}

export async function deleteBlob(env: Env, ref: BlobRef): Promise<void> {
  if (ref.upload_id !== "" && ref.completed_at === null) {
    // Unfinished multipart parts cost storage until aborted (R2 aborts them itself after 7 days).
    const s3 = attachmentConfig(env, jurisdictionOfAttachment(ref.attachment_id)).s3;
    try {
      if (s3) await abortMultipartUpload(s3, ref.attachment_id, ref.upload_id);
      else await bucketOfAttachment(env, ref.attachment_id).resumeMultipartUpload(ref.attachment_id, ref.upload_id).abort();
    } catch {
      // Already completed or aborted: nothing left to abort.
    }
  }
  await bucketOfAttachment(env, ref.attachment_id).delete(ref.attachment_id);
}
