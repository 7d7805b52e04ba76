/**
 * The reconciler and platform dispatch over the test layers, on the TestClock: one list request per
 * round however many delegations wait, the queued deadline, the 50-row window, `platform` dispatch
 * and re-tracking after a restart.
 */
import { describe, expect, it } from "@effect/vitest"
import {
  A2ATransportTest,
  AuditMemory,
  Delegations,
  DelegationsLayer,
  DelegationUnresolved,
  PlatformMirrorHttp,
  PlatformMirrorTest,
  PlatformHttpClient
} from "effect-a2a-delegation"
import type { PlatformDelegationRow } from "effect-a2a-delegation"
import { ConfigProvider, Duration, Effect, Either, Exit, Layer, Option, Redacted, TestClock } from "effect"
import * as Http from "./fixtures/http.js"
import { PEER, testLayer } from "./fixtures/layers.js"

const row = (delegationId: string, status: string, extra: Partial<PlatformDelegationRow> = {}): PlatformDelegationRow => ({
  delegation_id: delegationId,
  type: "delegation",
  status,
  ...extra
})

const queuedReply = A2ATransportTest.queued({ queueId: "q-1", queueDepth: 1, message: "queued" })
const platform = PlatformMirrorTest.PlatformMirrorTest

/** Delegates and waits for the delegation's own work to be over. */
const settled = (task = "busy") =>
  Effect.flatMap(Delegations, (d) => Effect.flatMap(d.delegate({ workspaceId: PEER, task }), d.awaitSettled))

describe("the reconciler", () => {
  it.effect("a round makes one list request however many delegations wait, and resolves them all", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      const waiting = yield* Effect.forEach([1, 2, 3, 4, 5], (n) => settled(`task ${n}`))
      expect(waiting.map((x) => x.status)).toEqual(["queued", "queued", "queued", "queued", "queued"])
      const p = yield* platform
      expect(yield* p.listCalls).toBe(0)

      // rounds 2 s after the first wait, then 2 s, 4 s, 8 s apart (capped at 30 s)
      yield* TestClock.adjust("2 seconds")
      expect(yield* p.listCalls).toBe(1)
      yield* TestClock.adjust("2 seconds")
      expect(yield* p.listCalls).toBe(2)
      yield* TestClock.adjust("3 seconds")
      expect(yield* p.listCalls).toBe(2)
      yield* TestClock.adjust("1 second")
      expect(yield* p.listCalls).toBe(3)

      yield* p.setRows(waiting.map((x, i) => row(x.id, i === 4 ? "failed" : "completed", { response_preview: `answer ${i}` })))
      yield* TestClock.adjust("8 seconds")
      expect(yield* p.listCalls).toBe(4)
      const all = yield* Effect.forEach(waiting, (x) => d.awaitSettled(x.id))
      expect(all.map((x) => x.status)).toEqual(["completed", "completed", "completed", "completed", "failed"])
      expect(all[0]?.result).toBe("answer 0")
      expect(all[0]?.resultIsPreview).toBe(true)

      // nothing waits any more: rounds go on without a request
      yield* TestClock.adjust("10 minutes")
      expect(yield* p.listCalls).toBe(4)
      // the resolutions were audited and notified
      const audit = yield* Effect.flatMap(AuditMemory.AuditMemory, (a) => a.records)
      expect(audit.filter((r) => r["via"] === "platform_refresh").map((r) => r.outcome)).toEqual([
        "success",
        "success",
        "success",
        "success",
        "failure"
      ])
      expect((yield* p.notifications).map((n) => n.status)).toEqual(["completed", "completed", "completed", "completed", "failed"])
    }).pipe(Effect.provide(testLayer({ send: () => queuedReply }))))

  it.effect("a delegation still queued at DELEGATION_QUEUED_TIMEOUT ends failed, typed, mirrored, audited and notified", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      const queued = yield* settled()
      const p = yield* platform
      yield* p.setRows([row(queued.id, "dispatched")])
      yield* TestClock.adjust(Duration.subtract(Duration.minutes(10), Duration.millis(1)))
      expect((yield* d.awaitSettled(queued.id)).status).toBe("queued")
      yield* TestClock.adjust("1 millis")
      const failed = yield* d.awaitSettled(queued.id)
      expect(failed.status).toBe("failed")
      expect(failed.cause).toEqual(new DelegationUnresolved({ reason: "queued-timeout", seconds: 600, lastStatus: "queued" }))
      expect(failed.error).toBe("The queued reply never arrived: still queued on the platform after 600s (DELEGATION_QUEUED_TIMEOUT)")
      expect(yield* p.updates).toEqual([{ delegationId: queued.id, status: "failed", error: failed.error, responsePreview: "" }])
      expect((yield* p.notifications).map((n) => n.message)).toEqual([
        `Queued delegation ${queued.id} to ${PEER} failed: ${failed.error}`
      ])
      const audit = yield* Effect.flatMap(AuditMemory.AuditMemory, (a) => a.records)
      expect(audit.map((r) => [r.outcome, r["reason"]])).toEqual([
        ["dispatched", undefined],
        ["queued", undefined],
        ["failure", "DelegationUnresolved"]
      ])
      // await ends too
      expect((yield* d.await(queued.id)).status).toBe("failed")
    }).pipe(Effect.provide(testLayer({ send: [queuedReply], settings: { queuedTimeout: Duration.minutes(10) } }))))

  it.effect("the default deadline is 60 minutes", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      const queued = yield* settled()
      yield* TestClock.adjust("59 minutes")
      expect((yield* d.awaitSettled(queued.id)).status).toBe("queued")
      yield* TestClock.adjust("1 minute")
      expect((yield* d.awaitSettled(queued.id)).cause?._tag).toBe("DelegationUnresolved")
    }).pipe(Effect.provide(testLayer({ send: [queuedReply] }))))

  it.effect("a delegation gone from a full 50-row list ends failed (out-of-window); one missing from a shorter list waits", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      const queued = yield* settled()
      const p = yield* platform
      const others = Array.from({ length: 50 }, (_, i) => row(`other-${i}`, "completed"))
      yield* p.setRows(others.slice(0, 49))
      yield* TestClock.adjust("2 seconds")
      expect((yield* d.awaitSettled(queued.id)).status).toBe("queued")
      yield* p.setRows(others)
      yield* TestClock.adjust("2 seconds")
      const failed = yield* d.awaitSettled(queued.id)
      expect(failed.status).toBe("failed")
      expect(failed.cause).toMatchObject({ _tag: "DelegationUnresolved", reason: "out-of-window" })
    }).pipe(Effect.provide(testLayer({ send: [queuedReply] }))))
})

describe("platform dispatch", () => {
  const platformLayer = (rows: ReadonlyArray<PlatformDelegationRow> = []) =>
    testLayer({ send: [], rows, settings: { dispatch: "platform" } })

  it.effect("posts once, keyed by the delegation id, and follows the platform's rows: queued, then completed", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      const p = yield* platform
      const id = yield* d.delegate({ workspaceId: PEER, task: "the whole task text" })
      const accepted = yield* d.awaitSettled(id)
      expect(accepted.status).toBe("in_progress")
      expect(accepted.dispatch).toBe("platform")
      expect(accepted.platformDelegationId).toBe(`platform-${id}`)
      expect(accepted.attempts).toBe(1)
      expect(yield* p.delegations).toEqual([{ targetId: PEER, task: "the whole task text", idempotencyKey: id }])
      // the platform records, discovers and sends
      expect(yield* p.records).toEqual([])

      yield* p.setRows([row(`platform-${id}`, "queued"), row(`platform-${id}`, "queued")])
      yield* TestClock.adjust("2 seconds")
      expect((yield* d.awaitSettled(id)).status).toBe("queued")
      yield* p.setRows([row(`platform-${id}`, "completed", { response_preview: "the answer" }), row(`platform-${id}`, "queued")])
      yield* TestClock.adjust("2 seconds")
      const done = yield* d.await(id)
      expect([done.status, done.result, done.resultIsPreview]).toEqual(["completed", "the answer", true])
      // read from the platform: nothing is mirrored back to it
      expect(yield* p.updates).toEqual([])
      const audit = yield* Effect.flatMap(AuditMemory.AuditMemory, (a) => a.records)
      expect(audit.map((r) => [r.outcome, r["via"]])).toEqual([
        ["dispatched", undefined],
        ["queued", "platform"],
        ["success", "platform"]
      ])
      expect((yield* p.notifications).map((n) => n.message)).toEqual([`Delegation ${id} to ${PEER} completed.`])
    }).pipe(Effect.provide(platformLayer())))

  it.effect("a completed row whose preview is a JSON-RPC error response (even cut at 300 bytes) ends failed", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      const p = yield* platform
      const id = yield* d.delegate({ workspaceId: PEER, task: "t" })
      yield* d.awaitSettled(id)
      const raw = JSON.stringify({ jsonrpc: "2.0", id: "r-1", error: { code: -32000, message: "quota \"exceeded\"", data: "x".repeat(400) } })
      yield* p.setRows([row(`platform-${id}`, "completed", { response_preview: `${raw.slice(0, 300)}...` })])
      yield* TestClock.adjust("2 seconds")
      const failed = yield* d.await(id)
      expect(failed.status).toBe("failed")
      expect(failed.error).toBe(`Platform reported the delegation as failed: JSON-RPC error -32000: quota "exceeded"`)
    }).pipe(Effect.provide(platformLayer())))

  it.effect("an unreachable platform: the POST is re-sent with the same key, then the delegation fails with the PlatformError", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      const p = yield* platform
      yield* p.setFailing(true)
      const id = yield* d.delegate({ workspaceId: PEER, task: "t" })
      yield* TestClock.adjust("5 seconds")
      const failed = yield* d.awaitSettled(id)
      expect(failed.status).toBe("failed")
      expect(failed.attempts).toBe(3)
      expect(failed.cause).toMatchObject({ _tag: "PlatformError", operation: "delegate", reason: "Transport" })
      expect((yield* p.delegations).map((x) => x.idempotencyKey)).toEqual([id, id, id])
    }).pipe(Effect.provide(platformLayer())))

  it.effect("cancelling a delegation the platform holds marks the platform's row failed; a POST that failed updates no row", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      const p = yield* platform
      const id = yield* d.delegate({ workspaceId: PEER, task: "t" })
      expect((yield* d.awaitSettled(id)).platformDelegationId).toBe(`platform-${id}`)
      const cancelled = yield* d.cancel(id)
      expect(cancelled.status).toBe("cancelled")
      expect((yield* p.updates).map((u) => [u.delegationId, u.status])).toEqual([[`platform-${id}`, "failed"]])
      // the reconciler leaves a cancelled delegation alone
      yield* p.setRows([row(`platform-${id}`, "completed", { response_preview: "late" })])
      yield* TestClock.adjust("1 minute")
      expect((yield* d.status(id)).status).toBe("cancelled")

      yield* p.setFailing(true)
      const refused = yield* d.delegate({ workspaceId: PEER, task: "t2" })
      yield* TestClock.adjust("5 seconds")
      expect((yield* d.awaitSettled(refused)).status).toBe("failed")
      expect((yield* p.updates).map((u) => u.delegationId)).toEqual([`platform-${id}`])
    }).pipe(Effect.provide(platformLayer())))

  it.effect("a restarted layer tracks again what the platform still has queued or in flight, under the platform's id", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      const p = yield* platform
      expect(yield* p.listCalls).toBe(1)
      const inFlight = yield* d.status("p-1")
      expect([inFlight.status, inFlight.workspaceId, inFlight.dispatch, inFlight.platformDelegationId]).toEqual([
        "in_progress",
        "target-a",
        "platform",
        "p-1"
      ])
      expect((yield* d.status("p-3")).status).toBe("queued")
      expect(Exit.isFailure(yield* Effect.exit(d.status("p-2")))).toBe(true)
      expect((yield* d.list).map((x) => x.id)).toEqual(["p-1", "p-3"])

      yield* p.setRows([row("p-1", "completed", { response_preview: "late" }), row("p-3", "failed", { error: "gone" })])
      yield* TestClock.adjust("2 seconds")
      expect((yield* d.await("p-1")).result).toBe("late")
      expect((yield* d.await("p-3")).error).toBe("Platform reported the delegation as failed: gone")
    }).pipe(Effect.provide(platformLayer([
      row("p-3", "queued", { target_id: "target-b" }),
      row("p-2", "completed", { response_preview: "done before" }),
      row("p-2", "dispatched", { target_id: "target-a" }),
      row("p-1", "dispatched", { target_id: "target-a" }),
      row("p-3", "queued", { target_id: "target-b" })
    ]))))

  it.effect("other modes read nothing from the platform when the layer starts", () =>
    Effect.gen(function*() {
      expect(yield* Effect.flatMap(platform, (p) => p.listCalls)).toBe(0)
    }).pipe(Effect.provide(testLayer({ send: [], rows: [row("p-1", "dispatched")] }))))
})

describe("configuration", () => {
  const resolve = (env: Record<string, string>) =>
    Effect.either(Effect.withConfigProvider(
      DelegationsLayer.config,
      ConfigProvider.fromMap(new Map(Object.entries({ WORKSPACE_ID: "ws-me", ...env })))
    ))

  it.effect("DELEGATION_DISPATCH, DELEGATION_QUEUED_TIMEOUT and the reconciler's pace are read from the environment", () =>
    Effect.gen(function*() {
      const read = yield* resolve({
        DELEGATION_DISPATCH: "platform",
        DELEGATION_QUEUED_TIMEOUT: "120",
        DELEGATION_RECONCILE_INTERVAL: "1",
        DELEGATION_RECONCILE_MAX_INTERVAL: "10"
      })
      expect(Either.getOrThrow(read)).toMatchObject({
        dispatch: "platform",
        queuedTimeout: 120,
        reconcileInterval: 1,
        reconcileMaxInterval: 10
      })
      expect(Either.isLeft(yield* resolve({ DELEGATION_DISPATCH: "sideways" }))).toBe(true)
    }))

  it.effect("bad values fail the layer naming the variable", () =>
    Effect.gen(function*() {
      const build = (options: Partial<DelegationsLayer.Options>) =>
        Effect.exit(Effect.scoped(Layer.build(
          DelegationsLayer.layer({ workspaceId: "ws-me", ...options }).pipe(
            Layer.provide(Http.layer(() => Effect.succeed(Http.reply(200, []))))
          )
        )))
      for (
        const [options, key] of [
          [{ queuedTimeout: 0 }, "DELEGATION_QUEUED_TIMEOUT"],
          [{ reconcileInterval: 0 }, "DELEGATION_RECONCILE_INTERVAL"],
          [{ reconcileInterval: 10, reconcileMaxInterval: 5 }, "DELEGATION_RECONCILE_MAX_INTERVAL"],
          [{ dispatch: "sideways" as unknown as "direct" }, "DELEGATION_DISPATCH"]
        ] as const
      ) {
        const exit = yield* build(options)
        expect(Exit.isFailure(exit)).toBe(true)
        expect(String(Exit.isFailure(exit) ? exit.cause : "")).toContain(key)
      }
    }))
})

describe("platform dispatch keeps the rest the same", () => {
  it.effect("RBAC decides first: a denied delegation posts nothing and is audited as in every mode", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      const denied = yield* Effect.flip(d.delegate({ workspaceId: PEER, task: "t" }))
      expect(denied._tag).toBe("AccessDenied")
      expect(yield* Effect.flatMap(platform, (p) => p.delegations)).toEqual([])
      const audit = yield* Effect.flatMap(AuditMemory.AuditMemory, (a) => a.records)
      expect(audit.map((r) => [r.action, r.outcome])).toEqual([["rbac.deny", "denied"]])
    }).pipe(Effect.provide(testLayer({ send: [], allow: false, settings: { dispatch: "platform" } }))))
})

describe("PlatformMirrorHttp.delegate", () => {
  const PLATFORM = "http://platform:8080"
  const mirror = (step: Http.Step) =>
    PlatformMirrorHttp.make().pipe(
      Effect.provide(PlatformHttpClient.layer({
        platformUrl: PLATFORM,
        workspaceId: "ws-self",
        platformToken: Option.some(Redacted.make("tok")),
        orgId: Option.none()
      })),
      Effect.provide(Http.layer(() => Effect.succeed(step)))
    )

  it.effect("POSTs target_id, task and idempotency_key with the bearer; reads 202 and the 200 idempotent hit", () =>
    Effect.gen(function*() {
      const accepted = yield* Effect.flatMap(
        mirror(Http.reply(202, { delegation_id: "p-1", status: "delegated", target_id: "t" })),
        (m) => m.delegate({ targetId: "t", task: "the whole task", idempotencyKey: "d-1" })
      )
      expect(accepted).toEqual({ delegationId: "p-1", status: "delegated", idempotentHit: false })
      const replay = yield* Effect.flatMap(
        mirror(Http.reply(200, { delegation_id: "p-1", status: "queued", target_id: "t", idempotent_hit: true })),
        (m) => m.delegate({ targetId: "t", task: "the whole task", idempotencyKey: "d-1" })
      )
      expect(replay).toEqual({ delegationId: "p-1", status: "queued", idempotentHit: true })
    }))

  it.effect("the request it sends", () =>
    Effect.gen(function*() {
      const m = yield* PlatformMirrorHttp.make().pipe(Effect.provide(PlatformHttpClient.layer({
        platformUrl: PLATFORM,
        workspaceId: "ws-self",
        platformToken: Option.some(Redacted.make("tok")),
        orgId: Option.none()
      })))
      yield* m.delegate({ targetId: "t", task: "the whole task", idempotencyKey: "d-1" })
      const [request] = yield* Http.requests
      expect(request?.url).toBe(`${PLATFORM}/workspaces/ws-self/delegate`)
      expect(request?.headers["authorization"]).toBe("Bearer tok")
      expect(request?.body).toStrictEqual({ target_id: "t", task: "the whole task", idempotency_key: "d-1" })
    }).pipe(Effect.provide(Http.layer(() => Effect.succeed(Http.reply(202, { delegation_id: "p-1", status: "delegated" }))))))

  it.effect("a 400 is a Status error with the platform's text; a body without delegation_id a Decode error", () =>
    Effect.gen(function*() {
      const refused = yield* Effect.flip(Effect.flatMap(
        mirror(Http.reply(400, { error: "self-delegation not permitted" })),
        (m) => m.delegate({ targetId: "t", task: "t", idempotencyKey: "d-1" })
      ))
      expect([refused.operation, refused.reason, refused.status, refused.detail]).toEqual([
        "delegate",
        "Status",
        400,
        "self-delegation not permitted"
      ])
      const garbled = yield* Effect.flip(Effect.flatMap(
        mirror(Http.reply(202, { status: "delegated" })),
        (m) => m.delegate({ targetId: "t", task: "t", idempotencyKey: "d-1" })
      ))
      expect([garbled.operation, garbled.reason]).toEqual(["delegate", "Decode"])
    }))
})
