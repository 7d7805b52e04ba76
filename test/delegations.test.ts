import { describe, expect, it } from "@effect/vitest"
import {
  A2AResponseError,
  A2ATransportError,
  A2ATransportTest,
  AccessDenied,
  AuditMemory,
  Delegation,
  DelegationEvicted,
  DelegationNotFound,
  Delegations,
  DelegationsLayer,
  DelegationStore,
  DelegationStoreMemory,
  DiscoveryError,
  DiscoveryTest,
  InvalidDelegation,
  MessageReply,
  PlatformMirrorTest,
  RbacTest
} from "effect-a2a-delegation"
import type { AuditRecord, PlatformDelegationRow, SendMessage, SendReply } from "effect-a2a-delegation"
import { Cause, Context, Deferred, Duration, Effect, Exit, Fiber, Layer, Option, Random, Ref, Scope, TestClock } from "effect"
import { PEER, PEER_URL, SELF, testLayer } from "./fixtures/layers.js"

// --- helpers -------------------------------------------------------------------------------------

const sent: Effect.Effect<ReadonlyArray<SendMessage>, never, A2ATransportTest.A2ATransportTest> = Effect.flatMap(
  A2ATransportTest.A2ATransportTest,
  (t) => t.sent
)
const sentCount = Effect.map(sent, (all) => all.length)
const polledCount = Effect.flatMap(A2ATransportTest.A2ATransportTest, (t) => Effect.map(t.polled, (all) => all.length))
const auditRecords = Effect.flatMap(AuditMemory.AuditMemory, (a) => a.records)
const delegationAudits = (id: string) =>
  Effect.map(
    auditRecords,
    (all): ReadonlyArray<AuditRecord> => all.filter((r) => r.event_type === "delegation" && r.delegation_id === id)
  )
const platform = PlatformMirrorTest.PlatformMirrorTest

/** Lets background fibers run until they block (on the TestClock or forever). */
const settle = TestClock.adjust("0 millis")

/** Starts a delegation to the default peer and waits for it without moving the clock. */
const delegateAndAwait = (task = "do stuff", workspaceId = PEER) =>
  Effect.gen(function*() {
    const d = yield* Delegations
    const id = yield* d.delegate({ workspaceId, task })
    return yield* d.awaitSettled(id)
  })

/** Starts a delegation and waits for it while moving the TestClock far enough for every retry. */
const delegateAndAwaitWithTime = (task = "do stuff", time: Duration.DurationInput = "10 minutes") =>
  Effect.gen(function*() {
    const d = yield* Delegations
    const id = yield* d.delegate({ workspaceId: PEER, task })
    const fiber = yield* Effect.fork(d.awaitSettled(id))
    yield* TestClock.adjust(time)
    return yield* Fiber.join(fiber)
  })

const messageWith = (message: {
  readonly parts?: ReadonlyArray<{ readonly kind?: string; readonly type?: string; readonly text?: unknown }>
  readonly artifacts?: ReadonlyArray<{ readonly parts: ReadonlyArray<{ readonly kind?: string; readonly text?: unknown }> }>
}): MessageReply => {
  const raw = { kind: "message", role: "agent", messageId: "reply", parts: message.parts ?? [], artifacts: message.artifacts ?? [] }
  return new MessageReply({ message: raw, raw })
}

const transportStatus = (status: number, detail: string, retryAfterMillis?: number) =>
  new A2ATransportError({
    url: PEER_URL,
    reason: "Status",
    status,
    detail,
    ...(retryAfterMillis === undefined ? {} : { retryAfterMillis })
  })

const row = (
  delegationId: string,
  status: string,
  extra: { readonly response_preview?: string; readonly error?: string } = {}
): PlatformDelegationRow => ({ delegation_id: delegationId, type: "delegation", status, ...extra })

// --- starting a delegation -----------------------------------------------------------------------

describe("delegate", () => {
  it.effect("returns an id at once, before any discovery or A2A call", () => {
    // Discovery and the transport note whether `delegate` had already returned when they ran.
    let returned = false
    const seenAtDiscovery: Array<boolean> = []
    const seenAtSend: Array<boolean> = []
    const peers: Record<string, string> = {}
    Object.defineProperty(peers, PEER, {
      enumerable: true,
      get: () => {
        seenAtDiscovery.push(returned)
        return PEER_URL
      }
    })
    return Effect.gen(function*() {
      const d = yield* Delegations
      const id = yield* d.delegate({ workspaceId: PEER, task: "do stuff" })
      returned = true
      expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
      // Stored at once; its work may already have run (the test peer answers without waiting).
      const stored = yield* d.status(id)
      expect(stored.workspaceId).toBe(PEER)
      const done = yield* d.awaitSettled(id)
      expect(done.status).toBe("completed")
      expect(seenAtDiscovery).toEqual([true])
      expect(seenAtSend).toEqual([true])
    }).pipe(Effect.provide(testLayer({
      send: () => {
        seenAtSend.push(returned)
        return A2ATransportTest.message("done")
      },
      peers
    })))
  })

  it.effect("is in_progress while the peer has not answered", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      const id = yield* d.delegate({ workspaceId: PEER, task: "do stuff" })
      yield* settle
      const stored = yield* d.status(id)
      expect(stored.status).toBe("in_progress")
      expect(stored.attempts).toBe(1)
      expect(yield* d.running).toBe(1)
      expect(yield* sentCount).toBe(1)
    }).pipe(Effect.provide(testLayer({ send: [Effect.never] }))))

  it.effect("the background fiber completes the delegation", () =>
    Effect.gen(function*() {
      const done = yield* delegateAndAwait()
      expect(done.status).toBe("completed")
      expect(done.result).toContain("done")
      expect(done.error).toBeUndefined()
      expect(done.attempts).toBe(1)
      const d = yield* Delegations
      expect(yield* d.running).toBe(0)
      expect((yield* d.status(done.id)).status).toBe("completed")
    }).pipe(Effect.provide(testLayer({ send: [A2ATransportTest.message("done")] }))))

  it.effect("stores only a 200-character preview of the task but sends the full task", () =>
    Effect.gen(function*() {
      const task = "x".repeat(150) + "y".repeat(150)
      const done = yield* delegateAndAwait(task)
      expect(done.task).toBe(task.slice(0, 200))
      const [request] = yield* sent
      expect(request?.text).toBe(task)
    }).pipe(Effect.provide(testLayer({ send: [A2ATransportTest.message("done")] }))))
})

// --- status and list -----------------------------------------------------------------------------

describe("status and list", () => {
  it.effect("list returns every delegation, oldest first", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      const a = yield* d.delegate({ workspaceId: "ws-a", task: "task A" })
      const b = yield* d.delegate({ workspaceId: "ws-b", task: "task B" })
      const all = yield* d.list
      expect(all.length).toBe(2)
      expect(all.map((x) => x.id)).toEqual([a, b])
      expect(all.map((x) => x.workspaceId)).toEqual(["ws-a", "ws-b"])
      expect(all.map((x) => x.task)).toEqual(["task A", "task B"])
    }).pipe(Effect.provide(testLayer({
      send: [A2ATransportTest.message("done")],
      peers: { "ws-a": "http://a:8000", "ws-b": "http://b:8000" }
    }))))

  it.effect("status of an unknown id fails with DelegationNotFound", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      const error = yield* Effect.flip(d.status("nonexistent"))
      expect(error).toBeInstanceOf(DelegationNotFound)
      expect(error.id).toBe("nonexistent")
      expect(error.message).toContain("nonexistent")
      const awaited = yield* Effect.flip(d.awaitSettled("nonexistent"))
      expect(awaited).toBeInstanceOf(DelegationNotFound)
    }).pipe(Effect.provide(testLayer({ send: [A2ATransportTest.message("done")] }))))

  it.effect("list makes no platform call when nothing is queued", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      yield* delegateAndAwait()
      expect((yield* d.list).length).toBe(1)
      expect(yield* Effect.flatMap(platform, (p) => p.listCalls)).toBe(0)
    }).pipe(Effect.provide(testLayer({ send: [A2ATransportTest.message("done")] }))))
})

// --- validation and RBAC -------------------------------------------------------------------------

describe("validation", () => {
  const cases: ReadonlyArray<{
    readonly name: string
    readonly workspaceId: string
    readonly task: string
    readonly field: InvalidDelegation["field"]
    readonly rule: InvalidDelegation["rule"]
  }> = [
    { name: "empty workspace id", workspaceId: "", task: "do stuff", field: "workspaceId", rule: "required" },
    {
      name: "workspace id over 128 characters",
      workspaceId: "w".repeat(129),
      task: "do stuff",
      field: "workspaceId",
      rule: "max_length"
    },
    { name: "workspace id with a slash", workspaceId: "ws/evil", task: "do stuff", field: "workspaceId", rule: "pattern" },
    { name: "workspace id with a space", workspaceId: "ws evil", task: "do stuff", field: "workspaceId", rule: "pattern" },
    { name: "workspace id with a newline", workspaceId: "ws\n", task: "do stuff", field: "workspaceId", rule: "pattern" },
    { name: "delegating to itself", workspaceId: SELF, task: "do stuff", field: "workspaceId", rule: "self_delegation" },
    { name: "empty task", workspaceId: PEER, task: "", field: "task", rule: "required" },
    { name: "whitespace-only task", workspaceId: PEER, task: "  \n\t ", field: "task", rule: "required" },
    {
      name: "task over 1 MiB of UTF-8 (400,000 euro signs = 1.2 MB)",
      workspaceId: PEER,
      task: "€".repeat(400_000),
      field: "task",
      rule: "max_bytes"
    },
    {
      name: "task one 4-byte character over 1 MiB",
      workspaceId: PEER,
      task: "😀".repeat(262_145),
      field: "task",
      rule: "max_bytes"
    }
  ]

  for (const c of cases) {
    it.effect(`rejects ${c.name} and stores nothing`, () =>
      Effect.gen(function*() {
        const d = yield* Delegations
        const error = yield* Effect.flip(d.delegate({ workspaceId: c.workspaceId, task: c.task }))
        expect(error).toBeInstanceOf(InvalidDelegation)
        if (!(error instanceof InvalidDelegation)) return
        expect(error.field).toBe(c.field)
        expect(error.rule).toBe(c.rule)
        expect(error.message).toContain(`Invalid ${c.field} (${c.rule})`)
        yield* TestClock.adjust("1 minute")
        expect(yield* d.list).toEqual([])
        expect(yield* d.running).toBe(0)
        expect(yield* sentCount).toBe(0)
        expect(yield* Effect.flatMap(platform, (p) => p.records)).toEqual([])
        expect((yield* auditRecords).filter((r) => r.event_type === "delegation")).toEqual([])
      }).pipe(Effect.provide(testLayer({ send: [A2ATransportTest.message("done")] }))))
  }

  it.effect("accepts a 128-character workspace id and a task of exactly 1 MiB", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      const longId = "w".repeat(128)
      const task = "😀".repeat(262_144) // 1,048,576 bytes of UTF-8
      const a = yield* d.delegate({ workspaceId: longId, task: "do stuff" })
      const b = yield* d.delegate({ workspaceId: PEER, task })
      expect((yield* d.list).map((x) => x.id)).toEqual([a, b])
      const done = yield* d.awaitSettled(b)
      expect(done.status).toBe("completed")
      const requests = yield* sent
      expect(requests.find((r) => r.delegationId === b)?.text).toBe(task)
    }).pipe(Effect.provide(testLayer({
      send: [A2ATransportTest.message("done")],
      peers: { [PEER]: PEER_URL, ["w".repeat(128)]: PEER_URL }
    }))))
})

describe("RBAC", () => {
  it.effect("a denied delegation fails with AccessDenied, is audited and stores nothing", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      const error = yield* Effect.flip(d.delegate({ workspaceId: PEER, task: "do stuff" }))
      expect(error).toBeInstanceOf(AccessDenied)
      expect(error.message).toContain("RBAC")
      expect(yield* Effect.flatMap(RbacTest.RbacTest, (r) => r.checked)).toEqual(["delegate"])
      const records = yield* auditRecords
      expect(records.length).toBe(1)
      expect(records[0]).toMatchObject({
        event_type: "rbac",
        action: "rbac.deny",
        outcome: "denied",
        resource: PEER,
        workspace_id: SELF,
        actor: SELF,
        attempted_action: "delegate"
      })
      yield* TestClock.adjust("1 minute")
      expect(yield* d.list).toEqual([])
      expect(yield* sentCount).toBe(0)
      expect(yield* Effect.flatMap(platform, (p) => p.records)).toEqual([])
    }).pipe(Effect.provide(testLayer({ send: [A2ATransportTest.message("done")], allow: false }))))

  it.effect("RBAC is checked before the input", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      const error = yield* Effect.flip(d.delegate({ workspaceId: "", task: "" }))
      expect(error).toBeInstanceOf(AccessDenied)
    }).pipe(Effect.provide(testLayer({ send: [A2ATransportTest.message("done")], allow: false }))))
})

// --- discovery -----------------------------------------------------------------------------------

describe("discovery", () => {
  it.effect("a 403 from discovery fails the delegation, audited and mirrored, without sending", () =>
    Effect.gen(function*() {
      const done = yield* delegateAndAwait("do stuff", "stranger")
      expect(done.status).toBe("failed")
      expect(done.error).toMatch(/^Discovery failed: HTTP 403/)
      expect(done.cause).toMatchObject({ _tag: "DiscoveryError", status: 403 })
      expect(yield* sentCount).toBe(0)
      expect(yield* Effect.flatMap(DiscoveryTest.DiscoveryTest, (t) => t.lookups)).toEqual(["stranger"])
      const audits = yield* delegationAudits(done.id)
      expect(audits.map((r) => r.outcome)).toEqual(["dispatched", "failure"])
      expect(audits[1]).toMatchObject({ reason: "discovery_error", last_error: done.error })
      const updates = yield* Effect.flatMap(platform, (p) => p.updates)
      expect(updates).toEqual([{ delegationId: done.id, status: "failed", error: done.error, responsePreview: "" }])
    }).pipe(Effect.provide(testLayer({ send: [A2ATransportTest.message("done")] }))))

  it.effect("a 404 from discovery fails the delegation", () =>
    Effect.gen(function*() {
      const done = yield* delegateAndAwait()
      expect(done.status).toBe("failed")
      expect(done.error).toContain("Discovery failed: HTTP 404")
      expect(yield* sentCount).toBe(0)
    }).pipe(Effect.provide(testLayer({
      send: [A2ATransportTest.message("done")],
      peers: { [PEER]: new DiscoveryError({ workspaceId: PEER, reason: "Status", status: 404, detail: "not found" }) }
    }))))

  it.effect("a peer without a URL fails with 'No URL'", () =>
    Effect.gen(function*() {
      const done = yield* delegateAndAwait()
      expect(done.status).toBe("failed")
      expect(done.error).toContain("No URL")
      expect(done.error).toContain(PEER)
    }).pipe(Effect.provide(testLayer({
      send: [A2ATransportTest.message("done")],
      peers: { [PEER]: new DiscoveryError({ workspaceId: PEER, reason: "NoUrl", detail: "" }) }
    }))))

  it.effect("a discovery transport failure keeps its text", () =>
    Effect.gen(function*() {
      const done = yield* delegateAndAwait()
      expect(done.status).toBe("failed")
      expect(done.error).toContain("dns fail")
    }).pipe(Effect.provide(testLayer({
      send: [A2ATransportTest.message("done")],
      peers: { [PEER]: new DiscoveryError({ workspaceId: PEER, reason: "Transport", detail: "dns fail" }) }
    }))))

  it.effect("sends to the discovered URL", () =>
    Effect.gen(function*() {
      yield* delegateAndAwait()
      const [request] = yield* sent
      expect(request?.endpoint.url).toBe(PEER_URL)
      expect(request?.endpoint.id).toBe(PEER)
    }).pipe(Effect.provide(testLayer({ send: [A2ATransportTest.message("done")] }))))
})

// --- answers -------------------------------------------------------------------------------------

describe("reading the answer", () => {
  it.effect("a Message's text parts become the result", () =>
    Effect.gen(function*() {
      const done = yield* delegateAndAwait()
      expect(done.status).toBe("completed")
      expect(done.result).toBe("hello world")
    }).pipe(Effect.provide(testLayer({ send: [A2ATransportTest.message("hello world")] }))))

  it.effect("artifact texts come first, then part texts, joined by newlines; other parts are skipped", () =>
    Effect.gen(function*() {
      const done = yield* delegateAndAwait()
      expect(done.status).toBe("completed")
      expect(done.result).toBe("artifact text\nsecond artifact\npart one\nlegacy part")
    }).pipe(Effect.provide(testLayer({
      send: [messageWith({
        artifacts: [{ parts: [{ kind: "text", text: "artifact text" }] }, { parts: [{ kind: "text", text: "second artifact" }] }],
        parts: [
          { kind: "text", text: "part one" },
          { kind: "data", text: "not text" },
          { type: "text", text: "legacy part" }
        ]
      })]
    }))))

  it.effect("a Message with only artifacts completes with the artifact text", () =>
    Effect.gen(function*() {
      const done = yield* delegateAndAwait()
      expect(done.status).toBe("completed")
      expect(done.result).toBe("artifact text")
    }).pipe(Effect.provide(testLayer({
      send: [messageWith({ artifacts: [{ parts: [{ kind: "text", text: "artifact text" }] }], parts: [] })]
    }))))

  it.effect("a reply without text completes with its JSON", () =>
    Effect.gen(function*() {
      const done = yield* delegateAndAwait()
      expect(done.status).toBe("completed")
      const parsed: unknown = JSON.parse(done.result ?? "")
      expect(parsed).toMatchObject({ kind: "message", messageId: "reply", parts: [{ kind: "data" }] })
    }).pipe(Effect.provide(testLayer({ send: [messageWith({ parts: [{ kind: "data" }] })] }))))

  it.effect("a completed Task without text completes with its JSON", () =>
    Effect.gen(function*() {
      const done = yield* delegateAndAwait()
      expect(done.status).toBe("completed")
      expect(JSON.parse(done.result ?? "")).toMatchObject({ kind: "task", id: "t-9", status: { state: "completed" } })
      expect(done.taskId).toBeUndefined()
    }).pipe(Effect.provide(testLayer({ send: [A2ATransportTest.task("completed", { id: "t-9" })] }))))

  it.effect("a completed Task completes with its artifact text", () =>
    Effect.gen(function*() {
      const done = yield* delegateAndAwait()
      expect(done.status).toBe("completed")
      expect(done.result).toBe("task answer")
    }).pipe(Effect.provide(testLayer({ send: [A2ATransportTest.task("completed", { text: "task answer" })] }))))

  it.effect("a Message starting with 'Agent error:' fails the delegation", () =>
    Effect.gen(function*() {
      const done = yield* delegateAndAwait()
      expect(done.status).toBe("failed")
      expect(done.result).toBeUndefined()
      expect(done.error).toContain("Agent error: the model crashed")
      expect(done.cause).toMatchObject({ _tag: "PeerTaskFailed", reason: "agent-error" })
      expect(yield* sentCount).toBe(1)
    }).pipe(Effect.provide(testLayer({ send: [A2ATransportTest.message("Agent error: the model crashed")] }))))

  for (const state of ["failed", "rejected", "canceled"] as const) {
    it.effect(`a Task in state ${state} fails the delegation with its status message`, () =>
      Effect.gen(function*() {
        const done = yield* delegateAndAwait()
        expect(done.status).toBe("failed")
        expect(done.error).toContain(state)
        expect(done.error).toContain("out of quota")
        expect(done.cause).toMatchObject({ _tag: "PeerTaskFailed", reason: state, taskId: "t-1" })
        expect(yield* polledCount).toBe(0)
      }).pipe(Effect.provide(testLayer({
        send: [A2ATransportTest.task(state, { id: "t-1", text: "out of quota" })]
      }))))
  }

  for (const state of ["input-required", "auth-required"] as const) {
    it.effect(`a Task in state ${state} fails saying the peer needs input`, () =>
      Effect.gen(function*() {
        const done = yield* delegateAndAwait()
        expect(done.status).toBe("failed")
        expect(done.error).toContain("Peer needs input")
        expect(done.error).toContain("which file?")
        expect(done.cause).toMatchObject({ _tag: "PeerTaskFailed", reason: state })
        expect(yield* polledCount).toBe(0)
      }).pipe(Effect.provide(testLayer({ send: [A2ATransportTest.task(state, { text: "which file?" })] }))))
  }
})

// --- following a task ----------------------------------------------------------------------------

describe("task polling", () => {
  it.effect("a working Task is polled with tasks/get (0.5 s, then doubling) until completed", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      const id = yield* d.delegate({ workspaceId: PEER, task: "do stuff" })
      const fiber = yield* Effect.fork(d.awaitSettled(id))
      yield* settle
      expect(yield* polledCount).toBe(0)
      const working = yield* d.status(id)
      expect(working.status).toBe("in_progress")
      expect(working.taskId).toBe("t-7")
      yield* TestClock.adjust("499 millis")
      expect(yield* polledCount).toBe(0)
      yield* TestClock.adjust("1 millis")
      expect(yield* polledCount).toBe(1)
      yield* TestClock.adjust("999 millis")
      expect(yield* polledCount).toBe(1)
      yield* TestClock.adjust("1 millis")
      expect(yield* polledCount).toBe(2)
      yield* TestClock.adjust("2 seconds")
      expect(yield* polledCount).toBe(3)
      const done = yield* Fiber.join(fiber)
      expect(done.status).toBe("completed")
      expect(done.result).toBe("final answer")
      expect(done.attempts).toBe(1)
      const polled = yield* Effect.flatMap(A2ATransportTest.A2ATransportTest, (t) => t.polled)
      expect(polled.map((p) => p.taskId)).toEqual(["t-7", "t-7", "t-7"])
      expect(new Set(polled.map((p) => p.requestId)).size).toBe(3)
      expect(polled[0]?.endpoint.url).toBe(PEER_URL)
    }).pipe(Effect.provide(testLayer({
      send: [A2ATransportTest.task("submitted", { id: "t-7" })],
      getTask: [
        A2ATransportTest.task("working", { id: "t-7" }),
        A2ATransportTest.task("working", { id: "t-7" }),
        A2ATransportTest.task("completed", { id: "t-7", text: "final answer" })
      ]
    }))))

  it.effect("a transport failure of tasks/get keeps polling", () =>
    Effect.gen(function*() {
      const done = yield* delegateAndAwaitWithTime("do stuff", "10 seconds")
      expect(done.status).toBe("completed")
      expect(done.result).toBe("after hiccup")
      expect(yield* polledCount).toBe(2)
    }).pipe(Effect.provide(testLayer({
      send: [A2ATransportTest.task("working")],
      getTask: [
        A2ATransportTest.refused(),
        A2ATransportTest.task("completed", { text: "after hiccup" })
      ]
    }))))

  it.effect("a Task still working after the timeout fails with DelegationTimeout", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      const id = yield* d.delegate({ workspaceId: PEER, task: "do stuff" })
      const fiber = yield* Effect.fork(d.awaitSettled(id))
      yield* TestClock.adjust("299999 millis")
      expect((yield* d.status(id)).status).toBe("in_progress")
      yield* TestClock.adjust("1 millis")
      const done = yield* Fiber.join(fiber)
      expect(done.status).toBe("failed")
      expect(done.cause).toMatchObject({ _tag: "DelegationTimeout", seconds: 300, taskId: "t-slow", lastState: "working" })
      expect(done.error).toContain("300s")
      // polls at most 10 s apart: 0.5, 1.5, 3.5, 7.5, 15.5 then every 10 s up to 295.5
      expect(yield* polledCount).toBe(33)
      const audits = yield* delegationAudits(id)
      expect(audits.map((r) => r.outcome)).toEqual(["dispatched", "failure"])
    }).pipe(Effect.provide(testLayer({
      send: [A2ATransportTest.task("working", { id: "t-slow" })],
      getTask: [A2ATransportTest.task("working", { id: "t-slow" })]
    }))))

  it.effect("a polled Task that asks for input fails the delegation", () =>
    Effect.gen(function*() {
      const done = yield* delegateAndAwaitWithTime("do stuff", "1 minute")
      expect(done.status).toBe("failed")
      expect(done.error).toContain("Peer needs input")
      expect(done.cause).toMatchObject({ _tag: "PeerTaskFailed", reason: "input-required" })
    }).pipe(Effect.provide(testLayer({
      send: [A2ATransportTest.task("working")],
      getTask: [A2ATransportTest.task("input-required", { text: "which branch?" })]
    }))))
})

// --- queued ----------------------------------------------------------------------------------------

describe("queued", () => {
  const queuedReply = A2ATransportTest.queued({
    queueId: "q-1",
    queueDepth: 2,
    message: "Delegation queued — target at capacity"
  })

  it.effect("a queued reply marks the delegation queued, not failed, with no error", () =>
    Effect.gen(function*() {
      const done = yield* delegateAndAwait()
      expect(done.status).toBe("queued")
      expect(done.error).toBeUndefined()
      expect(done.cause).toBeUndefined()
      expect(done.result).toBeUndefined()
      expect(done.queueId).toBe("q-1")
      expect(done.queueDepth).toBe(2)
      expect(done.queueMessage).toBe("Delegation queued — target at capacity")
      expect(done.attempts).toBe(1)
      const audits = yield* delegationAudits(done.id)
      expect(audits.map((r) => r.outcome)).toEqual(["dispatched", "queued"])
      expect(audits[1]).toMatchObject({ attempt: 1, queue_id: "q-1", queue_depth: 2 })
      expect(yield* Effect.flatMap(platform, (p) => p.updates)).toEqual([])
      expect(yield* Effect.flatMap(platform, (p) => p.notifications)).toEqual([])
    }).pipe(Effect.provide(testLayer({ send: [queuedReply] }))))

  it.effect("a queued reply is never re-sent", () =>
    Effect.gen(function*() {
      const done = yield* delegateAndAwaitWithTime()
      expect(done.status).toBe("queued")
      yield* TestClock.adjust("10 minutes")
      expect(yield* sentCount).toBe(1)
    }).pipe(Effect.provide(testLayer({ send: [queuedReply, A2ATransportTest.message("second send")] }))))

  it.effect("a bare 202 without {queued: true} fails and is not retried", () =>
    Effect.gen(function*() {
      const done = yield* delegateAndAwaitWithTime()
      expect(done.status).toBe("failed")
      expect(done.error).toContain("202")
      expect(done.cause).toMatchObject({ _tag: "A2AResponseError", reason: "UnexpectedAccepted" })
      expect(yield* sentCount).toBe(1)
    }).pipe(Effect.provide(testLayer({
      send: [new A2AResponseError({ url: PEER_URL, reason: "UnexpectedAccepted", status: 202, detail: "" })]
    }))))

  it.effect("status() moves a queued delegation to completed from the platform's row", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      const queued = yield* delegateAndAwait()
      expect(queued.status).toBe("queued")
      const p = yield* platform
      yield* p.setRows([
        row("someone-else", "completed", { response_preview: "not ours" }),
        row(queued.id, "completed", { response_preview: "the late answer" }),
        row(queued.id, "queued")
      ])
      const refreshed = yield* d.status(queued.id)
      expect(refreshed.status).toBe("completed")
      expect(refreshed.result).toBe("the late answer")
      expect(refreshed.error).toBeUndefined()
      expect(yield* p.listCalls).toBe(1)
      const notifications = yield* p.notifications
      expect(notifications.length).toBe(1)
      expect(notifications[0]).toMatchObject({ delegationId: queued.id, targetId: PEER, status: "completed" })
      expect(notifications[0]?.message).not.toBe("")
      const audits = yield* delegationAudits(queued.id)
      expect(audits.map((r) => r.outcome)).toEqual(["dispatched", "queued", "success"])
      // Once finished, status() no longer asks the platform.
      expect((yield* d.status(queued.id)).status).toBe("completed")
      expect(yield* p.listCalls).toBe(1)
    }).pipe(Effect.provide(testLayer({ send: [queuedReply] }))))

  it.effect("status() moves a queued delegation to failed with the platform's error", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      const queued = yield* delegateAndAwait()
      const p = yield* platform
      yield* p.setRows([row(queued.id, "failed", { error: "peer crashed" })])
      const refreshed = yield* d.status(queued.id)
      expect(refreshed.status).toBe("failed")
      expect(refreshed.error).toContain("peer crashed")
      expect(refreshed.cause).toMatchObject({ _tag: "PeerTaskFailed", reason: "platform", detail: "peer crashed" })
      const audits = yield* delegationAudits(queued.id)
      expect(audits.map((r) => r.outcome)).toEqual(["dispatched", "queued", "failure"])
      expect((yield* p.notifications)[0]).toMatchObject({ delegationId: queued.id, status: "failed" })
    }).pipe(Effect.provide(testLayer({ send: [queuedReply] }))))

  it.effect("the newest decisive row wins", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      const queued = yield* delegateAndAwait()
      const p = yield* platform
      yield* p.setRows([
        row(queued.id, "dispatched"),
        row(queued.id, "failed", { error: "newest" }),
        row(queued.id, "completed", { response_preview: "older" })
      ])
      const refreshed = yield* d.status(queued.id)
      expect(refreshed.status).toBe("failed")
      expect(refreshed.error).toContain("newest")
    }).pipe(Effect.provide(testLayer({ send: [queuedReply] }))))

  it.effect("a delegation the platform still lists as queued or dispatched stays queued", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      const queued = yield* delegateAndAwait()
      const p = yield* platform
      yield* p.setRows([row(queued.id, "queued"), row(queued.id, "dispatched")])
      const refreshed = yield* d.status(queued.id)
      expect(refreshed.status).toBe("queued")
      expect(refreshed.error).toBeUndefined()
      expect(refreshed.queueId).toBe("q-1")
      expect(yield* p.listCalls).toBe(1)
      expect(yield* p.notifications).toEqual([])
    }).pipe(Effect.provide(testLayer({ send: [queuedReply] }))))

  it.effect("rows of another type do not decide", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      const queued = yield* delegateAndAwait()
      const p = yield* platform
      yield* p.setRows([{ delegation_id: queued.id, type: "a2a_send", status: "completed", response_preview: "no" }])
      expect((yield* d.status(queued.id)).status).toBe("queued")
    }).pipe(Effect.provide(testLayer({ send: [queuedReply] }))))

  it.effect("a failing platform leaves it queued and status() still succeeds", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      const queued = yield* delegateAndAwait()
      const p = yield* platform
      yield* p.setRows([row(queued.id, "completed", { response_preview: "unreachable" })])
      yield* p.setFailing(true)
      const refreshed = yield* d.status(queued.id)
      expect(refreshed.status).toBe("queued")
      expect(refreshed.error).toBeUndefined()
      const all = yield* d.list
      expect(all.map((x) => x.status)).toEqual(["queued"])
      // When the platform comes back, the next status() resolves it.
      yield* p.setFailing(false)
      expect((yield* d.status(queued.id)).status).toBe("completed")
    }).pipe(Effect.provide(testLayer({ send: [queuedReply] }))))

  it.effect("list refreshes every queued delegation with a single platform call", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      const first = yield* delegateAndAwait("queue me 1")
      const second = yield* delegateAndAwait("finish me")
      const third = yield* delegateAndAwait("queue me 2")
      expect([first.status, second.status, third.status]).toEqual(["queued", "completed", "queued"])
      const p = yield* platform
      yield* p.setRows([
        row(third.id, "failed", { error: "gave up" }),
        row(first.id, "completed", { response_preview: "first answer" })
      ])
      const all = yield* d.list
      expect(yield* p.listCalls).toBe(1)
      expect(all.map((x) => x.id)).toEqual([first.id, second.id, third.id])
      expect(all.map((x) => x.status)).toEqual(["completed", "completed", "failed"])
      expect(all[0]?.result).toBe("first answer")
      expect(all[2]?.error).toContain("gave up")
    }).pipe(Effect.provide(testLayer({
      send: (request) => request.text.startsWith("queue me") ? queuedReply : A2ATransportTest.message("done")
    }))))

  it.effect("the rows option seeds the platform's list", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      const queued = yield* delegateAndAwait()
      // No row names this fresh id, so it stays queued.
      expect((yield* d.status(queued.id)).status).toBe("queued")
      expect(yield* Effect.flatMap(platform, (p) => p.listCalls)).toBe(1)
    }).pipe(Effect.provide(testLayer({ send: [queuedReply], rows: [row("older-id", "completed")] }))))
})

// --- errors and retries ------------------------------------------------------------------------------

describe("A2A errors and retries", () => {
  it.effect("a JSON-RPC error fails the delegation at once, keeping the code", () =>
    Effect.gen(function*() {
      const done = yield* delegateAndAwaitWithTime()
      expect(done.status).toBe("failed")
      expect(done.error).toContain("internal error")
      expect(done.cause).toMatchObject({ _tag: "JsonRpcError", code: -32603, rpcMessage: "internal error" })
      expect(done.attempts).toBe(1)
      expect(yield* sentCount).toBe(1)
    }).pipe(Effect.provide(testLayer({ send: [A2ATransportTest.rpcError(-32603, "internal error")] }))))

  it.effect("method not found (-32601) mentions A2A v1.0", () =>
    Effect.gen(function*() {
      const done = yield* delegateAndAwait()
      expect(done.status).toBe("failed")
      expect(done.error).toContain("v1.0")
      expect(done.cause).toMatchObject({ _tag: "JsonRpcError", code: -32601 })
    }).pipe(Effect.provide(testLayer({ send: [A2ATransportTest.rpcError(-32601, "Method not found")] }))))

  it.effect("a refused connection is retried, then fails with 'refused'", () =>
    Effect.gen(function*() {
      const done = yield* delegateAndAwaitWithTime()
      expect(done.status).toBe("failed")
      expect(done.error).toContain("refused")
      expect(done.cause).toMatchObject({ _tag: "A2ATransportError", reason: "ConnectionRefused" })
      expect(done.attempts).toBe(3)
      expect(yield* sentCount).toBe(3)
    }).pipe(Effect.provide(testLayer({ send: [A2ATransportTest.refused()] }))))

  it.effect("transport failures are retried after 5 s then 10 s, 3 POSTs in total", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      const id = yield* d.delegate({ workspaceId: PEER, task: "do stuff" })
      const fiber = yield* Effect.fork(d.awaitSettled(id))
      yield* settle
      expect(yield* sentCount).toBe(1)
      expect((yield* d.status(id)).attempts).toBe(1)
      yield* TestClock.adjust("4999 millis")
      expect(yield* sentCount).toBe(1)
      yield* TestClock.adjust("1 millis")
      expect(yield* sentCount).toBe(2)
      yield* TestClock.adjust("9999 millis")
      expect(yield* sentCount).toBe(2)
      yield* TestClock.adjust("1 millis")
      expect(yield* sentCount).toBe(3)
      const done = yield* Fiber.join(fiber)
      expect(done.status).toBe("failed")
      expect(done.attempts).toBe(3)
      yield* TestClock.adjust("10 minutes")
      expect(yield* sentCount).toBe(3)
      const audits = yield* delegationAudits(id)
      expect(audits.map((r) => r.outcome)).toEqual(["dispatched", "failure"])
      expect(audits[1]).toMatchObject({ attempt: 3, last_error: done.error, reason: "A2ATransportError" })
    }).pipe(Effect.provide(testLayer({ send: [A2ATransportTest.refused()] }))))

  it.effect("a transport failure followed by an answer completes on the retry", () =>
    Effect.gen(function*() {
      const done = yield* delegateAndAwaitWithTime()
      expect(done.status).toBe("completed")
      expect(done.result).toBe("second time lucky")
      expect(done.attempts).toBe(2)
      expect(done.error).toBeUndefined()
    }).pipe(Effect.provide(testLayer({
      send: [transportStatus(503, "busy"), A2ATransportTest.message("second time lucky")]
    }))))

  it.effect("Retry-After is a lower bound on the wait", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      const id = yield* d.delegate({ workspaceId: PEER, task: "do stuff" })
      const fiber = yield* Effect.fork(d.awaitSettled(id))
      yield* settle
      expect(yield* sentCount).toBe(1)
      yield* TestClock.adjust("29999 millis")
      expect(yield* sentCount).toBe(1)
      yield* TestClock.adjust("1 millis")
      expect(yield* sentCount).toBe(2)
      const done = yield* Fiber.join(fiber)
      expect(done.status).toBe("completed")
      expect(done.result).toBe("ok")
      expect(done.attempts).toBe(2)
    }).pipe(Effect.provide(testLayer({
      send: [transportStatus(503, "busy", 30_000), A2ATransportTest.message("ok")]
    }))))

  it.effect("a Retry-After shorter than the schedule's delay does not shorten it", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      const id = yield* d.delegate({ workspaceId: PEER, task: "do stuff" })
      const fiber = yield* Effect.fork(d.awaitSettled(id))
      yield* TestClock.adjust("4999 millis")
      expect(yield* sentCount).toBe(1)
      yield* TestClock.adjust("1 millis")
      expect(yield* sentCount).toBe(2)
      expect((yield* Fiber.join(fiber)).status).toBe("completed")
    }).pipe(Effect.provide(testLayer({
      send: [transportStatus(429, "slow down", 1_000), A2ATransportTest.message("ok")]
    }))))

  it.effect("an HTTP 500 answer is not retried", () =>
    Effect.gen(function*() {
      const done = yield* delegateAndAwaitWithTime()
      expect(done.status).toBe("failed")
      expect(done.error).toContain("500")
      expect(done.error).toContain("boom")
      expect(done.cause).toMatchObject({ _tag: "A2AResponseError", status: 500 })
      expect(done.attempts).toBe(1)
      expect(yield* sentCount).toBe(1)
    }).pipe(Effect.provide(testLayer({
      send: [
        new A2AResponseError({ url: PEER_URL, reason: "Status", status: 500, detail: "boom" }),
        A2ATransportTest.message("must not be reached")
      ]
    }))))

  for (const status of [400, 401, 404, 413]) {
    it.effect(`an HTTP ${status} answer is not retried`, () =>
      Effect.gen(function*() {
        const done = yield* delegateAndAwaitWithTime()
        expect(done.status).toBe("failed")
        expect(done.error).toContain(String(status))
        expect(yield* sentCount).toBe(1)
      }).pipe(Effect.provide(testLayer({
        send: [
          new A2AResponseError({ url: PEER_URL, reason: "Status", status, detail: "nope" }),
          A2ATransportTest.message("must not be reached")
        ]
      }))))
  }

  it.effect("a JSON-RPC error after a transport failure stops the retries", () =>
    Effect.gen(function*() {
      const done = yield* delegateAndAwaitWithTime()
      expect(done.status).toBe("failed")
      expect(done.cause).toMatchObject({ _tag: "JsonRpcError", code: -32000 })
      expect(done.attempts).toBe(2)
      expect(yield* sentCount).toBe(2)
    }).pipe(Effect.provide(testLayer({
      send: [A2ATransportTest.refused(), A2ATransportTest.rpcError(-32000, "nope"), A2ATransportTest.message("x")]
    }))))

  it.effect("every attempt carries the delegation id as messageId, a new requestId and the metadata", () =>
    Effect.gen(function*() {
      const task = "do stuff"
      const done = yield* delegateAndAwaitWithTime(task)
      expect(done.status).toBe("completed")
      const requests = yield* sent
      expect(requests.length).toBe(3)
      for (const request of requests) {
        expect(request.messageId).toBe(done.id)
        expect(request.delegationId).toBe(done.id)
        expect(request.text).toBe(task)
        expect(request.metadata.parent_task_id).toBe(done.id)
        expect(request.metadata.source_workspace_id).toBe(SELF)
        expect(request.metadata.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/)
      }
      expect(new Set(requests.map((r) => r.requestId)).size).toBe(3)
      expect(requests.map((r) => r.requestId)).not.toContain(done.id)
    }).pipe(Effect.provide(testLayer({
      send: [A2ATransportTest.refused(), transportStatus(502, "bad gateway"), A2ATransportTest.message("ok")]
    }))))

  it.effect("two delegations get distinct ids", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      const a = yield* d.delegate({ workspaceId: PEER, task: "one" })
      const b = yield* d.delegate({ workspaceId: PEER, task: "two" })
      expect(a).not.toBe(b)
      yield* d.awaitSettled(a)
      yield* d.awaitSettled(b)
      const ids = (yield* sent).map((r) => r.messageId)
      expect(new Set(ids)).toEqual(new Set([a, b]))
    }).pipe(Effect.provide(testLayer({ send: [A2ATransportTest.message("done")] }))))
})

// --- defects and interruption --------------------------------------------------------------------------

describe("abnormal ends", () => {
  it.effect("a defect in the transport ends the delegation as failed (DelegationAborted defect)", () =>
    Effect.gen(function*() {
      const done = yield* delegateAndAwaitWithTime()
      expect(done.status).toBe("failed")
      expect(done.error).toMatch(/^Internal error/)
      expect(done.cause).toMatchObject({ _tag: "DelegationAborted", reason: "defect" })
      expect(yield* sentCount).toBe(1)
      const audits = yield* delegationAudits(done.id)
      expect(audits.map((r) => r.outcome)).toEqual(["dispatched", "failure"])
      expect(audits[1]).toMatchObject({ reason: "DelegationAborted" })
      const updates = yield* Effect.flatMap(platform, (p) => p.updates)
      expect(updates.map((u) => u.status)).toEqual(["failed"])
      const d = yield* Delegations
      expect(yield* d.running).toBe(0)
    }).pipe(Effect.provide(testLayer({ send: [Effect.die("boom")] }))))

  it.effect("a defect in discovery ends the delegation as failed", () => {
    const peers: Record<string, string> = {}
    Object.defineProperty(peers, PEER, {
      enumerable: true,
      get: () => {
        throw new Error("registry exploded")
      }
    })
    return Effect.gen(function*() {
      const done = yield* delegateAndAwait()
      expect(done.status).toBe("failed")
      expect(done.cause).toMatchObject({ _tag: "DelegationAborted", reason: "defect" })
      expect(done.error).toContain("registry exploded")
      expect(yield* sentCount).toBe(0)
      const updates = yield* Effect.flatMap(platform, (p) => p.updates)
      expect(updates.map((u) => u.status)).toEqual(["failed"])
    }).pipe(Effect.provide(testLayer({ send: [A2ATransportTest.message("done")], peers })))
  })

  it.effect("closing the layer interrupts in-flight delegations, which end failed", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(testLayer({ send: [Effect.never] }), scope)
      const d = Context.get(context, Delegations)
      const transport = Context.get(context, A2ATransportTest.A2ATransportTest)
      const audit = Context.get(context, AuditMemory.AuditMemory)
      const mirror = Context.get(context, PlatformMirrorTest.PlatformMirrorTest)

      const id = yield* d.delegate({ workspaceId: PEER, task: "never answered" })
      yield* settle
      expect((yield* transport.sent).length).toBe(1)
      expect(yield* d.running).toBe(1)

      yield* Scope.close(scope, Exit.void)

      const after = yield* d.status(id)
      expect(after.status).toBe("failed")
      expect(after.error).toMatch(/^interrupted/)
      expect(after.cause).toMatchObject({ _tag: "DelegationAborted", reason: "interrupted" })
      const records = (yield* audit.records).filter((r) => r.delegation_id === id)
      expect(records.map((r) => r.outcome)).toEqual(["dispatched", "failure"])
      const updates = yield* mirror.updates
      expect(updates).toEqual([{ delegationId: id, status: "failed", error: after.error, responsePreview: "" }])
    }))

  it.effect("closing the layer leaves finished delegations untouched", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(testLayer({ send: [A2ATransportTest.message("done")] }), scope)
      const d = Context.get(context, Delegations)
      const mirror = Context.get(context, PlatformMirrorTest.PlatformMirrorTest)
      const id = yield* d.delegate({ workspaceId: PEER, task: "quick" })
      expect((yield* d.awaitSettled(id)).status).toBe("completed")
      yield* Scope.close(scope, Exit.void)
      expect((yield* d.status(id)).status).toBe("completed")
      expect((yield* mirror.updates).map((u) => u.status)).toEqual(["completed"])
    }))
})

// --- history ---------------------------------------------------------------------------------------------

describe("history", () => {
  it.effect("keeps at most `history` finished delegations, evicting the oldest finished first", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      const first = yield* delegateAndAwait("one")
      const second = yield* delegateAndAwait("two")
      const third = yield* delegateAndAwait("three")
      const all = yield* d.list
      expect(all.map((x) => x.id)).toEqual([second.id, third.id])
      const error = yield* Effect.flip(d.status(first.id))
      // Read (awaited) and beyond the history: evicted, and the id says so.
      expect(error).toBeInstanceOf(DelegationEvicted)
      expect(error).toMatchObject({ id: first.id, reason: "history" })
      expect((yield* d.status(second.id)).status).toBe("completed")
    }).pipe(Effect.provide(testLayer({ send: [A2ATransportTest.message("done")], settings: { history: 2 } }))))

  it.effect("never evicts in-progress or queued delegations", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      const hanging = yield* d.delegate({ workspaceId: PEER, task: "hang" })
      yield* settle
      const queued = yield* delegateAndAwait("queue")
      const a = yield* delegateAndAwait("a")
      const b = yield* delegateAndAwait("b")
      const all = yield* d.list
      expect(all.map((x) => x.id)).toEqual([hanging, queued.id, b.id])
      expect(all.map((x) => x.status)).toEqual(["in_progress", "queued", "completed"])
      expect(yield* Effect.flip(d.status(a.id))).toBeInstanceOf(DelegationEvicted)
    }).pipe(Effect.provide(testLayer({
      send: (request) =>
        request.text === "hang"
          ? Effect.never
          : request.text === "queue"
          ? A2ATransportTest.queued({ queueId: "q" })
          : A2ATransportTest.message("done"),
      settings: { history: 1 }
    }))))

  it.effect("list keeps creation order across many evictions, with an old running delegation kept", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      const hanging = yield* d.delegate({ workspaceId: PEER, task: "hang" })
      const quick: Array<string> = []
      for (let i = 0; i < 150; i++) quick.push((yield* delegateAndAwait(`quick ${i}`)).id)
      const later = yield* d.delegate({ workspaceId: PEER, task: "hang" })
      yield* settle
      expect((yield* d.list).map((x) => x.id)).toEqual([hanging, ...quick.slice(-3), later])
      expect(yield* Effect.flip(d.status(quick[0]!))).toBeInstanceOf(DelegationEvicted)
      expect((yield* d.status(hanging)).status).toBe("in_progress")
    }).pipe(Effect.provide(testLayer({
      send: (request) => request.text === "hang" ? Effect.never : A2ATransportTest.message("done"),
      settings: { history: 3 }
    }))))

  it.effect("evicts by finishing order, not creation order", () => {
    let slowAttempts = 0
    return Effect.gen(function*() {
      const d = yield* Delegations
      // "slow" needs one retry (5 s), so it finishes after the two created later.
      const slow = yield* d.delegate({ workspaceId: PEER, task: "slow" })
      const fast1 = yield* delegateAndAwait("fast 1")
      const fast2 = yield* delegateAndAwait("fast 2")
      expect((yield* d.list).map((x) => x.id)).toEqual([slow, fast1.id, fast2.id])
      const fiber = yield* Effect.fork(d.awaitSettled(slow))
      yield* TestClock.adjust("5 seconds")
      expect((yield* Fiber.join(fiber)).status).toBe("completed")
      expect((yield* d.list).map((x) => x.id)).toEqual([slow, fast2.id])
      expect(yield* Effect.flip(d.status(fast1.id))).toBeInstanceOf(DelegationEvicted)
    }).pipe(Effect.provide(testLayer({
      send: (request) =>
        request.text === "slow" && slowAttempts++ === 0 ? A2ATransportTest.refused() : A2ATransportTest.message("done"),
      settings: { history: 2 }
    })))
  })
})

// --- concurrency ---------------------------------------------------------------------------------------

describe("concurrency", () => {
  // Each send waits for its own latch; `open(n)` lets the n-th send (0-based) answer.
  const latched = (count: number) =>
    Effect.map(
      Effect.all(Array.from({ length: count }, () => Deferred.make<void>())),
      (latches) => ({
        send: (_: SendMessage, index: number) =>
          Effect.as(Deferred.await(latches[index]!), A2ATransportTest.message(`answer ${index}`)),
        open: (index: number) => Deferred.succeed(latches[index]!, undefined)
      })
    )

  it.effect("runs at most `concurrency` delegations; the others wait pending and start in order", () =>
    Effect.gen(function*() {
      const peer = yield* latched(4)
      yield* Effect.gen(function*() {
        const d = yield* Delegations
        const ids = [
          yield* d.delegate({ workspaceId: PEER, task: "t0" }),
          yield* d.delegate({ workspaceId: PEER, task: "t1" }),
          yield* d.delegate({ workspaceId: PEER, task: "t2" }),
          yield* d.delegate({ workspaceId: PEER, task: "t3" })
        ]
        const states = Effect.forEach(ids, (id) => Effect.map(d.status(id), (x) => x.status))
        yield* settle
        expect(yield* states).toEqual(["in_progress", "in_progress", "pending", "pending"])
        expect((yield* sent).map((m) => m.text)).toEqual(["t0", "t1"])

        // The second one ends first: its place goes to the oldest waiter.
        yield* peer.open(1)
        yield* settle
        expect(yield* states).toEqual(["in_progress", "completed", "in_progress", "pending"])
        expect((yield* sent).map((m) => m.text)).toEqual(["t0", "t1", "t2"])

        yield* peer.open(0)
        yield* peer.open(2)
        yield* peer.open(3)
        const done = yield* Effect.forEach(ids, (id) => d.awaitSettled(id))
        expect(done.map((x) => x.status)).toEqual(["completed", "completed", "completed", "completed"])
        expect((yield* sent).map((m) => m.text)).toEqual(["t0", "t1", "t2", "t3"])
        expect(yield* d.running).toBe(0)
      }).pipe(Effect.provide(testLayer({ send: peer.send, settings: { concurrency: 2 } })))
    }))

  it.effect("a failed delegation frees its place too", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      const first = yield* d.delegate({ workspaceId: PEER, task: "to nowhere" })
      const second = yield* d.delegate({ workspaceId: PEER, task: "fine" })
      expect((yield* d.awaitSettled(first)).status).toBe("failed")
      expect((yield* d.awaitSettled(second)).status).toBe("completed")
    }).pipe(Effect.provide(testLayer({
      send: (request) => request.text === "to nowhere" ? A2ATransportTest.rpcError(-32000, "no") : A2ATransportTest.message("ok"),
      settings: { concurrency: 1 }
    }))))

  it.effect("closing the layer ends the running and the waiting delegations as failed; none stays pending", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(
        testLayer({ send: [Effect.never], settings: { concurrency: 1 } }),
        scope
      )
      const d = Context.get(context, Delegations)
      const audit = Context.get(context, AuditMemory.AuditMemory)
      const mirror = Context.get(context, PlatformMirrorTest.PlatformMirrorTest)
      const running = yield* d.delegate({ workspaceId: PEER, task: "never answered" })
      const waiting = [
        yield* d.delegate({ workspaceId: PEER, task: "waits 1" }),
        yield* d.delegate({ workspaceId: PEER, task: "waits 2" })
      ]
      yield* settle
      expect((yield* d.status(waiting[0]!)).status).toBe("pending")

      yield* Scope.close(scope, Exit.void)

      const first = yield* d.status(running)
      expect(first.status).toBe("failed")
      expect(first.cause).toMatchObject({ _tag: "DelegationAborted", reason: "interrupted" })
      for (const id of waiting) {
        const after = yield* d.status(id)
        expect(after.status).toBe("failed")
        expect(after.cause).toMatchObject({ _tag: "DelegationAborted", reason: "interrupted" })
        expect(after.error).toContain("before the delegation started")
      }
      // Only the delegation that started was dispatched, audited and mirrored.
      expect((yield* audit.records).filter((r) => r.event_type === "delegation").map((r) => r.delegation_id))
        .toEqual([running, running])
      expect((yield* mirror.records).map((r) => r.delegationId)).toEqual([running])
    }))

  it.effect("a concurrency below 1 given to layerCore is a defect when the layer is built, not stuck delegations", () =>
    Effect.gen(function*() {
      for (const concurrency of [0, 1.5, Number.NaN]) {
        const exit = yield* Effect.exit(Effect.scoped(Layer.build(testLayer({ send: [], settings: { concurrency } }))))
        expect(Exit.isFailure(exit) && Cause.isDie(exit.cause), String(concurrency)).toBe(true)
      }
    }))

  it.effect("closing the layer in the same step as delegate leaves nothing pending", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(testLayer({ send: [Effect.never] }), scope)
      const d = Context.get(context, Delegations)
      const id = yield* d.delegate({ workspaceId: PEER, task: "closed at once" })
      yield* Scope.close(scope, Exit.void)
      const after = yield* d.status(id)
      expect(after.status).toBe("failed")
      expect(after.cause).toMatchObject({ _tag: "DelegationAborted", reason: "interrupted" })
    }))
})

// --- platform mirror -------------------------------------------------------------------------------------

describe("platform mirror", () => {
  it.effect("records the delegation with the full task before discovery", () =>
    Effect.gen(function*() {
      const task = "hello " + "z".repeat(300)
      const done = yield* delegateAndAwait(task, "stranger")
      expect(done.status).toBe("failed") // discovery failed, yet the record was made
      const records = yield* Effect.flatMap(platform, (p) => p.records)
      expect(records).toEqual([{ delegationId: done.id, targetId: "stranger", task }])
    }).pipe(Effect.provide(testLayer({ send: [A2ATransportTest.message("done")] }))))

  it.effect("a platform that fails never changes the outcome", () =>
    Effect.gen(function*() {
      const done = yield* delegateAndAwait()
      expect(done.status).toBe("completed")
      expect(done.result).toBe("done anyway")
      expect(done.error).toBeUndefined()
      expect(yield* sentCount).toBe(1)
      const audits = yield* delegationAudits(done.id)
      expect(audits.map((r) => r.outcome)).toEqual(["dispatched", "success"])
    }).pipe(Effect.provide(testLayer({ send: [A2ATransportTest.message("done anyway")], platformFailing: true }))))

  it.effect("a platform that fails does not change a failure either", () =>
    Effect.gen(function*() {
      const done = yield* delegateAndAwait("do stuff", "stranger")
      expect(done.status).toBe("failed")
      expect(done.error).toContain("Discovery failed: HTTP 403")
    }).pipe(Effect.provide(testLayer({ send: [A2ATransportTest.message("done")], platformFailing: true }))))

  it.effect("a completed delegation updates the platform and notifies the user", () =>
    Effect.gen(function*() {
      const done = yield* delegateAndAwait()
      const p = yield* platform
      expect(yield* p.updates).toEqual([
        { delegationId: done.id, status: "completed", error: "", responsePreview: "the result text" }
      ])
      const notifications = yield* p.notifications
      expect(notifications.length).toBe(1)
      expect(notifications[0]).toMatchObject({ delegationId: done.id, targetId: PEER, status: "completed" })
      expect(notifications[0]?.message.length).toBeGreaterThan(0)
    }).pipe(Effect.provide(testLayer({ send: [A2ATransportTest.message("the result text")] }))))

  it.effect("a failed delegation updates the platform with its error and notifies the user", () =>
    Effect.gen(function*() {
      const done = yield* delegateAndAwait()
      const p = yield* platform
      expect(yield* p.updates).toEqual([
        { delegationId: done.id, status: "failed", error: done.error, responsePreview: "" }
      ])
      const notifications = yield* p.notifications
      expect(notifications[0]).toMatchObject({ delegationId: done.id, status: "failed" })
      expect(notifications[0]?.message).toContain("internal error")
    }).pipe(Effect.provide(testLayer({ send: [A2ATransportTest.rpcError(-32603, "internal error")] }))))

  it.effect("the update carries the whole result (the HTTP mirror cuts it to 500 characters on the wire)", () =>
    Effect.gen(function*() {
      const huge = "X".repeat(10_000)
      const done = yield* delegateAndAwait()
      expect(done.result).toBe(huge)
      const updates = yield* Effect.flatMap(platform, (p) => p.updates)
      expect(updates[0]?.responsePreview).toBe(huge)
    }).pipe(Effect.provide(testLayer({ send: [A2ATransportTest.message("X".repeat(10_000))] }))))
})

// --- audit -----------------------------------------------------------------------------------------------

describe("audit", () => {
  it.effect("a successful delegation is audited dispatched then success, with its id and trace", () =>
    Effect.gen(function*() {
      const task = "t".repeat(250)
      const done = yield* delegateAndAwait(task)
      const records = yield* auditRecords
      expect(records.map((r) => r.outcome)).toEqual(["dispatched", "success"])
      for (const record of records) {
        expect(record).toMatchObject({
          event_type: "delegation",
          action: "delegate",
          resource: PEER,
          workspace_id: SELF,
          actor: SELF,
          delegation_id: done.id
        })
        expect(record.trace_id).toBe(done.traceId ?? "")
        expect(Number.isNaN(Date.parse(record.timestamp))).toBe(false)
      }
      expect(records[0]?.["task_preview"]).toBe("t".repeat(200))
      expect(records[1]?.["attempt"]).toBe(1)
    }).pipe(Effect.provide(testLayer({ send: [A2ATransportTest.message("done")] }))))

  it.effect("a failed delegation is audited with last_error and attempt", () =>
    Effect.gen(function*() {
      const done = yield* delegateAndAwait()
      const records: ReadonlyArray<AuditRecord> = yield* delegationAudits(done.id)
      expect(records.map((r) => r.outcome)).toEqual(["dispatched", "failure"])
      expect(records[1]).toMatchObject({ last_error: done.error, attempt: 1, reason: "JsonRpcError" })
    }).pipe(Effect.provide(testLayer({ send: [A2ATransportTest.rpcError(-32000, "kaput")] }))))
})


describe("after the layer is closed", () => {
  it.effect("delegate interrupts the caller and leaves no pending delegation behind", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(testLayer({ send: [A2ATransportTest.message("ok")] }), scope)
      const delegations = Context.get(context, Delegations)
      yield* Scope.close(scope, Exit.void)
      const exit = yield* Effect.exit(delegations.delegate({ workspaceId: PEER, task: "late" }))
      expect(Exit.isInterrupted(exit)).toBe(true)
      const all = yield* delegations.list
      expect(all.map((d) => d.status)).toEqual(["failed"])
      expect(all[0]!.error).toMatch(/^interrupted/)
    }))
})

// --- the store and the ids ---------------------------------------------------------------------------------

describe("DelegationStore", () => {
  /** The memory store, with every change it is asked to write recorded as `id status`. */
  const recordingStore = Effect.gen(function*() {
    const memory = yield* DelegationStoreMemory.make({ history: 10 })
    const writes = yield* Ref.make<ReadonlyArray<string>>([])
    const note = (delegation: Option.Option<Delegation>) =>
      Option.match(delegation, {
        onNone: () => Effect.void,
        onSome: (d) => Ref.update(writes, (all) => [...all, `${d.id} ${d.status}`])
      })
    const store = DelegationStore.of({
      ...memory,
      create: (input) =>
        Effect.tap(memory.create(input), (created) => note(Option.some(created.stored.delegation))),
      update: (id, change, guard) =>
        Effect.tap(memory.update(id, change, guard), (written) => note(Option.map(written, (s) => s.delegation)))
    })
    return { store, writes }
  })

  const coreWith = (store: DelegationStore["Type"], send: A2ATransportTest.Script<SendMessage, SendReply>) =>
    DelegationsLayer.layerCoreWithoutStore({
      workspaceId: SELF,
      timeout: Duration.seconds(300),
      retrySchedule: DelegationsLayer.linearRetry(3, "5 seconds"),
      pollSchedule: DelegationsLayer.defaultPollSchedule
    }).pipe(Layer.provideMerge(Layer.mergeAll(
      Layer.succeed(DelegationStore, store),
      A2ATransportTest.layer({ send }),
      DiscoveryTest.layer({ [PEER]: PEER_URL }),
      PlatformMirrorTest.layer(),
      AuditMemory.layer({ workspaceId: SELF }),
      RbacTest.layer({ allow: true })
    )))

  it.effect("a host's own store receives every state change, and status and list read from it", () =>
    Effect.gen(function*() {
      const { store, writes } = yield* recordingStore
      yield* Effect.gen(function*() {
        const d = yield* Delegations
        const id = yield* d.delegate({ workspaceId: PEER, task: "stored elsewhere" })
        const done = yield* d.awaitSettled(id)
        expect(done.status).toBe("completed")
        // pending, in progress, the attempt (count and version), completed
        expect(yield* Ref.get(writes)).toEqual([`${id} pending`, `${id} in_progress`, `${id} in_progress`, `${id} completed`])
        expect(Option.map(yield* store.get(id), (stored) => stored.delegation.result)).toEqual(Option.some("done"))
        expect((yield* d.list).map((x) => x.id)).toEqual([id])
        expect((yield* d.status(id)).attempts).toBe(1)
      }).pipe(Effect.provide(coreWith(store, [A2ATransportTest.message("done")])))
    }))

  it.effect("closing the layer fails the pending and running delegations in the host's store", () =>
    Effect.gen(function*() {
      const { store } = yield* recordingStore
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(coreWith(store, [Effect.never]), scope)
      const d = Context.get(context, Delegations)
      const id = yield* d.delegate({ workspaceId: PEER, task: "cut short" })
      yield* settle
      yield* Scope.close(scope, Exit.void)
      const stored = yield* store.get(id)
      expect(Option.map(stored, (x) => [x.delegation.status, x.delegation.cause?._tag])).toEqual(
        Option.some(["failed", "DelegationAborted"])
      )
    }))
})

describe("delegation ids", () => {
  const idsWith = (seed: string) =>
    Effect.gen(function*() {
      const d = yield* Delegations
      const a = yield* d.delegate({ workspaceId: PEER, task: "one" })
      const b = yield* d.delegate({ workspaceId: PEER, task: "two" })
      return [a, b]
    }).pipe(Effect.withRandom(Random.make(seed)), Effect.provide(testLayer({ send: [A2ATransportTest.message("done")] })))

  it.effect("are UUIDs (v4) drawn from the Random service: the same seed gives the same ids", () =>
    Effect.gen(function*() {
      const first = yield* idsWith("seed-1")
      const again = yield* idsWith("seed-1")
      const other = yield* idsWith("seed-2")
      for (const id of [...first, ...other]) {
        expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
      }
      expect(again).toEqual(first)
      expect(first[0]).not.toBe(first[1])
      expect(other).not.toEqual(first)
    }))
})
