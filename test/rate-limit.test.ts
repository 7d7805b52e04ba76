/**
 * Living within the platform's rate limit with the default configuration: over real HTTP against
 * `LocalPlatform`, which limits every caller as the platform does (a token bucket, 429 with
 * `Retry-After`, `X-RateLimit-*` on every answer).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Logger, LogLevel } from "effect"
import { captureLogs, eventually, makeWorldWith, SELF, workspace } from "./fixtures/e2e.js"

const PEER_A = workspace("peer-a")
const PEER_B = workspace("peer-b")

describe("e2e: the platform's rate limit, default configuration", () => {
  it.scopedLive(
    "a burst of ten times the limit's budget: every delegation completes, every row is updated, at most one 429 per window, a handful of warnings",
    () =>
      Effect.gen(function*() {
        // 20 requests a second, a bucket of 20: 200 delegations at once are ten times its budget.
        const world = yield* makeWorldWith({ rateLimit: { requests: 20, per: "1 second" } })
        yield* world.peer(PEER_A, { reply: (task) => `a: ${task}` }, 1_000)
        yield* world.peer(PEER_B, { reply: (task) => `b: ${task}` }, 1_000)
        const logs = captureLogs()
        const host = yield* world.hostFromEnv({
          PLATFORM_URL: world.platform.url,
          WORKSPACE_ID: SELF,
          PLATFORM_TOKEN: world.selfToken
        }).pipe(Effect.provide(logs.layer))

        const ids = yield* Effect.forEach(
          Array.from({ length: 200 }, (_, i) => i),
          (i) => host.delegate({ workspaceId: i % 2 === 0 ? PEER_A : PEER_B, task: `task ${i}` })
        ).pipe(Effect.provide(logs.layer))
        const done = yield* Effect.forEach(ids, (id) => host.await(id), { concurrency: "unbounded" })
        expect(done.filter((d) => d.status !== "completed")).toEqual([])

        // Every row shows the outcome: the platform acknowledged each delegation's record and update.
        yield* eventually(
          Effect.forEach(ids, (id) => host.status(id)),
          (all) => all.every((d) => d.platformPending === undefined),
          "every platform write acknowledged",
          "60 seconds"
        )
        const rows = yield* eventually(
          world.platform.rows,
          (all) => all.filter((row) => row.method === "delegate" && row.status === "completed").length === 200,
          "200 delegate rows completed",
          "30 seconds"
        )
        for (const id of ids) {
          expect(rows.filter((row) => row.delegationId === id && row.method === "delegate").map((row) => row.status))
            .toEqual(["completed"])
        }

        // Refusals: none, or at most one per window of the limit.
        const refused = (yield* world.platform.requests).filter((request) => request.status === 429)
        const windows = new Map<number, number>()
        for (const request of refused) {
          const second = Math.floor(request.at / 1000)
          windows.set(second, (windows.get(second) ?? 0) + 1)
        }
        expect([...windows.values()].filter((count) => count > 1)).toEqual([])

        // A handful of warning lines for the whole run, not one per call.
        const warnings = logs.lines.filter((line) => line.level === "WARN")
        expect(warnings.length).toBeLessThanOrEqual(5)
        expect(logs.lines.filter((line) => line.level === "ERROR")).toEqual([])
      }).pipe(Effect.provide(Layer.empty), Logger.withMinimumLogLevel(LogLevel.Info)),
    180_000
  )
})
