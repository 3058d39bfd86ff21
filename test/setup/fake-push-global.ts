// Starts the loopback fake push providers (test/support/fake-push.ts) once for the in-workerd
// suite; tests reach them at inject("fakePushUrl") (/__subscribe, /__script, /__records).
import type { TestProject } from "vitest/node";
import { devPushKeys, startFakePush } from "../support/fake-push.js";

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const fake = await startFakePush(devPushKeys());
  project.provide("fakePushUrl", fake.url);
  return () => fake.close();
}

declare module "vitest" {
  export interface ProvidedContext {
    fakePushUrl: string;
  }
}
