/** Every scenario, in the order `npm run bench` runs them. */
import { oneToOne } from "./a-one-to-one.js";
import { group100 } from "./b-group-100.js";
import { parallelChannels } from "./c-parallel-channels.js";
import { group1000 } from "./d-group-1000.js";
import { resumeCatchUp } from "./e-resume.js";
import { idleMemory } from "./f-idle-memory.js";
import { broadcastScale } from "./g-broadcast.js";
import { group1000Online } from "./h-group-1000-online.js";
import type { Scenario } from "./scenario.js";

export const SCENARIOS: readonly Scenario[] = [oneToOne, group100, parallelChannels, group1000, resumeCatchUp, idleMemory, broadcastScale, group1000Online];
