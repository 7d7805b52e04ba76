import { describe, expect, it } from "@effect/vitest"
import { A2ATransportTest, Delegations } from "effect-a2a-delegation"
import { Effect, Fiber, TestClock } from "effect"
import { testLayer } from "./fixtures/layers.js"

describe("smoke", () => {
  it.effect("completes", () =>
    Effect.gen(function*() {
      const delegations = yield* Delegations
      const id = yield* delegations.delegate({ workspaceId: "target", task: "do stuff" })
      const done = yield* delegations.await(id)
      expect(done.status).toBe("completed")
      expect(done.result).toBe("done")
      expect(done.attempts).toBe(1)
    }).pipe(Effect.provide(testLayer({ send: [A2ATransportTest.message("done")] }))))

  it.effect("retries", () =>
    Effect.gen(function*() {
      const delegations = yield* Delegations
      const id = yield* delegations.delegate({ workspaceId: "target", task: "do stuff" })
      const fiber = yield* Effect.fork(delegations.await(id))
      yield* TestClock.adjust("1 minute")
      const done = yield* Fiber.join(fiber)
      expect(done.status).toBe("failed")
      expect(done.attempts).toBe(3)
      expect(done.error).toContain("refused")
    }).pipe(Effect.provide(testLayer({ send: [A2ATransportTest.refused()] }))))
})
