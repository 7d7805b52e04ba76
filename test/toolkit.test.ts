/**
 * The `@effect/ai` toolkit: `delegate_to_workspace`, `check_delegation_status` and
 * `cancel_delegation` over the in-memory test layers, asserting the exact JSON each tool hands back
 * to a model (the shapes of the original Python tools).
 */
import { Tool } from "@effect/ai"
import { describe, expect, it } from "@effect/vitest"
import { A2ATransportTest, Delegations, PlatformMirrorTest } from "effect-a2a-delegation"
import type { PlatformDelegationRow } from "effect-a2a-delegation"
import { DelegationToolkit, DelegationToolkitLive } from "effect-a2a-delegation/ai"
import { Effect, Exit, Fiber, Layer, Schema, TestClock } from "effect"
import { PEER, SELF, testLayer } from "./fixtures/layers.js"

// --- helpers -------------------------------------------------------------------------------------

/** The toolkit's handlers over the core service and every in-memory test layer (which stay visible). */
const toolkitLayer = (options: Parameters<typeof testLayer>[0]) =>
  DelegationToolkitLive.layer.pipe(Layer.provideMerge(testLayer(options)))

/** Lets background fibers run until they block (on the TestClock or forever). */
const settle = TestClock.adjust("0 millis")

const delegateTool = (workspace_id: string, task: string) =>
  Effect.flatMap(DelegationToolkit, (toolkit) => toolkit.handle("delegate_to_workspace", { workspace_id, task }))

const checkTool = (params: { readonly task_id?: string }) =>
  Effect.flatMap(DelegationToolkit, (toolkit) => toolkit.handle("check_delegation_status", params))

const cancelTool = (task_id: string) =>
  Effect.flatMap(DelegationToolkit, (toolkit) => toolkit.handle("cancel_delegation", { task_id }))

/** Delegates through the tool and returns the `task_id` it reported. */
const delegateId = (task: string, workspace_id = PEER) =>
  Effect.map(delegateTool(workspace_id, task), (r) => {
    expect(r.isFailure).toBe(false)
    if (!r.result.success) throw new Error(`delegation refused: ${r.result.error}`)
    return r.result.task_id
  })

/** Waits for the background fiber of a delegation without moving the clock. */
const awaitDone = (id: string) => Effect.flatMap(Delegations, (d) => d.awaitSettled(id))

/** Waits for a delegation while moving the TestClock far enough for every retry. */
const awaitWithTime = (id: string) =>
  Effect.gen(function*() {
    const d = yield* Delegations
    const fiber = yield* Effect.fork(d.awaitSettled(id))
    yield* TestClock.adjust("10 minutes")
    return yield* Fiber.join(fiber)
  })

/** The JSON text a model would receive. */
const wire = (encoded: unknown): unknown => JSON.parse(JSON.stringify(encoded))

const row = (delegationId: string, status: string, extra: Partial<PlatformDelegationRow> = {}): PlatformDelegationRow => ({
  delegation_id: delegationId,
  type: "delegation",
  status,
  ...extra
})

// --- the tools themselves ------------------------------------------------------------------------

describe("the tool definitions", () => {
  it("are named as the original tools", () => {
    expect(Object.keys(DelegationToolkit.tools).sort()).toEqual(["cancel_delegation", "check_delegation_status", "delegate_to_workspace"])
    expect(DelegationToolkit.tools.delegate_to_workspace.name).toBe("delegate_to_workspace")
    expect(DelegationToolkit.tools.check_delegation_status.name).toBe("check_delegation_status")
    expect(DelegationToolkit.tools.cancel_delegation.name).toBe("cancel_delegation")
  })

  it("cancel_delegation takes a task_id and says what cannot be cancelled", () => {
    const description = Tool.getDescription(DelegationToolkit.tools.cancel_delegation) ?? ""
    expect(description).toContain("\"cancelled\"")
    expect(description).toContain("already completed or failed cannot be cancelled")
    const schema = Tool.getJsonSchema(DelegationToolkit.tools.cancel_delegation)
    expect("required" in schema ? [...(schema.required ?? [])] : []).toEqual(["task_id"])
  })

  it("delegate_to_workspace says it is non-blocking and points at check_delegation_status", () => {
    const description = Tool.getDescription(DelegationToolkit.tools.delegate_to_workspace) ?? ""
    expect(description).toContain("non-blocking")
    expect(description).toContain("task_id")
    expect(description).toContain("check_delegation_status")
  })

  it("check_delegation_status carries the queued/failed guidance", () => {
    const description = Tool.getDescription(DelegationToolkit.tools.check_delegation_status) ?? ""
    for (const status of ["pending", "in_progress", "queued", "completed", "failed", "cancelled"]) {
      expect(description).toContain(`"${status}"`)
    }
    // every queued delegation ends: completed with the reply, or failed at its deadline (never "the reply will arrive")
    expect(description).toContain("The outcome WILL arrive")
    expect(description).toContain("result_is_preview")
    expect(description).toContain("Do NOT retry")
    expect(description).toContain("Do NOT do the work yourself")
    // fall back to doing the work only on failed, never on queued
    expect(description).toMatch(/Only fall back to doing the work yourself when the status\s+is "failed", never when it is "queued"/)
    expect(description).toContain("list all delegations when task_id is empty")
  })

  it("delegate_to_workspace requires workspace_id and task, both strings", () => {
    const schema = Tool.getJsonSchema(DelegationToolkit.tools.delegate_to_workspace)
    expect(schema).toMatchObject({
      type: "object",
      properties: {
        workspace_id: { type: "string", description: "The ID of the target workspace to delegate to." },
        task: { type: "string", description: "The task description to send to the peer." }
      }
    })
    expect("required" in schema ? [...(schema.required ?? [])].sort() : []).toEqual(["task", "workspace_id"])
  })

  it("check_delegation_status has an optional task_id", () => {
    const schema = Tool.getJsonSchema(DelegationToolkit.tools.check_delegation_status)
    expect(schema).toMatchObject({ type: "object", properties: { task_id: { type: "string" } } })
    expect("required" in schema ? schema.required ?? [] : []).toEqual([])
    const properties = "properties" in schema ? schema.properties : undefined
    expect(JSON.stringify(properties)).toContain("Leave empty to list all delegations.")

    const decode = Schema.decodeUnknownSync(DelegationToolkit.tools.check_delegation_status.parametersSchema)
    expect(decode({})).toEqual({})
    expect(decode({ task_id: "abc" })).toEqual({ task_id: "abc" })
    expect(() => decode({ task_id: 7 })).toThrow()
  })

  it.effect("an unknown tool name or bad parameters fail the call, not the delegations", () =>
    Effect.gen(function*() {
      const toolkit = yield* DelegationToolkit
      const handle = toolkit.handle as (name: string, params: unknown) => Effect.Effect<unknown, unknown>
      const unknownTool = yield* Effect.exit(handle("delegate", { workspace_id: PEER, task: "x" }))
      expect(Exit.isFailure(unknownTool)).toBe(true)
      const badParams = yield* Effect.exit(handle("delegate_to_workspace", { workspace_id: PEER }))
      expect(Exit.isFailure(badParams)).toBe(true)
      expect(yield* Effect.flatMap(Delegations, (d) => d.list)).toEqual([])
      expect(yield* Effect.flatMap(A2ATransportTest.A2ATransportTest, (t) => t.sent)).toEqual([])
    }).pipe(Effect.provide(toolkitLayer({ send: [A2ATransportTest.message("done")] }))))
})

// --- delegate_to_workspace -----------------------------------------------------------------------

describe("delegate_to_workspace", () => {
  it.effect("returns {success: true, task_id, status: \"delegated\", message} and starts the delegation", () =>
    Effect.gen(function*() {
      const r = yield* delegateTool(PEER, "summarise the report")
      expect(r.isFailure).toBe(false)
      if (!r.result.success) return expect.fail("expected a delegation")
      const id = r.result.task_id
      expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
      expect(wire(r.encodedResult)).toEqual({
        success: true,
        task_id: id,
        status: "delegated",
        message: `Task delegated to ${PEER}. Use check_delegation_status('${id}') to get the result when ready.`
      })
      expect(r.result.message).toContain("check_delegation_status")
      expect(r.result.message).toContain(id)

      const done = yield* awaitDone(id)
      expect(done.status).toBe("completed")
      const sent = yield* Effect.flatMap(A2ATransportTest.A2ATransportTest, (t) => t.sent)
      expect(sent.map((s) => [s.messageId, s.text, s.endpoint.id])).toEqual([[id, "summarise the report", PEER]])
    }).pipe(Effect.provide(toolkitLayer({ send: [A2ATransportTest.message("done")] }))))

  it.effect("the same idempotency_key twice returns the same task_id and starts one delegation", () =>
    Effect.gen(function*() {
      const call = Effect.flatMap(DelegationToolkit, (toolkit) =>
        toolkit.handle("delegate_to_workspace", { workspace_id: PEER, task: "summarise the report", idempotency_key: "turn-7" }))
      const first = yield* call
      const second = yield* call
      if (!first.result.success || !second.result.success) return expect.fail("expected delegations")
      expect(second.result.task_id).toBe(first.result.task_id)
      expect((yield* awaitDone(first.result.task_id)).status).toBe("completed")
      expect(yield* Effect.flatMap(A2ATransportTest.A2ATransportTest, (t) => t.sent)).toHaveLength(1)
      // an empty key is no key: two delegations
      const blank = (task: string) =>
        Effect.flatMap(DelegationToolkit, (toolkit) =>
          toolkit.handle("delegate_to_workspace", { workspace_id: PEER, task, idempotency_key: "" }))
      const a = yield* blank("a")
      const b = yield* blank("b")
      if (!a.result.success || !b.result.success) return expect.fail("expected delegations")
      expect(a.result.task_id).not.toBe(b.result.task_id)
    }).pipe(Effect.provide(toolkitLayer({ send: [A2ATransportTest.message("done")] }))))

  it.effect("an RBAC denial is {success: false, error} naming RBAC, and nothing starts", () =>
    Effect.gen(function*() {
      const r = yield* delegateTool(PEER, "do stuff")
      expect(r.isFailure).toBe(false)
      expect(wire(r.encodedResult)).toEqual({
        success: false,
        error: "RBAC: no 'delegate' permission. Roles: [operator]"
      })
      expect(r.result).toEqual({ success: false, error: expect.stringContaining("RBAC") })
      yield* TestClock.adjust("1 minute")
      expect(yield* Effect.flatMap(Delegations, (d) => d.list)).toEqual([])
      expect(yield* Effect.flatMap(A2ATransportTest.A2ATransportTest, (t) => t.sent)).toEqual([])
      const listed = yield* checkTool({})
      expect(wire(listed.encodedResult)).toEqual({ delegations: [], count: 0 })
    }).pipe(Effect.provide(toolkitLayer({ send: [A2ATransportTest.message("done")], allow: false }))))

  const invalid: ReadonlyArray<{ readonly name: string; readonly workspace_id: string; readonly task: string; readonly error: RegExp }> = [
    { name: "delegating to itself", workspace_id: SELF, task: "do stuff", error: /^Invalid workspaceId \(self_delegation\): / },
    { name: "an empty task", workspace_id: PEER, task: "", error: /^Invalid task \(required\): / },
    { name: "an empty workspace id", workspace_id: "", task: "do stuff", error: /^Invalid workspaceId \(required\): / },
    { name: "a workspace id with a slash", workspace_id: "ws/evil", task: "do stuff", error: /^Invalid workspaceId \(pattern\): / }
  ]
  for (const c of invalid) {
    it.effect(`${c.name} is {success: false, error} and nothing starts`, () =>
      Effect.gen(function*() {
        const r = yield* delegateTool(c.workspace_id, c.task)
        expect(r.isFailure).toBe(false)
        const json = wire(r.encodedResult)
        expect(Object.keys(json as object).sort()).toEqual(["error", "success"])
        expect(json).toEqual({ success: false, error: expect.stringMatching(c.error) })
        yield* TestClock.adjust("1 minute")
        expect(yield* Effect.flatMap(Delegations, (d) => d.list)).toEqual([])
        expect(yield* Effect.flatMap(A2ATransportTest.A2ATransportTest, (t) => t.sent)).toEqual([])
      }).pipe(Effect.provide(toolkitLayer({ send: [A2ATransportTest.message("done")] }))))
  }
})

// --- check_delegation_status with a task_id ---------------------------------------------------------

describe("check_delegation_status(task_id)", () => {
  it.effect("completed: {task_id, workspace_id, status, task, result}", () =>
    Effect.gen(function*() {
      const id = yield* delegateId("say hello")
      yield* awaitDone(id)
      const r = yield* checkTool({ task_id: id })
      expect(r.isFailure).toBe(false)
      expect(wire(r.encodedResult)).toEqual({
        task_id: id,
        workspace_id: PEER,
        status: "completed",
        task: "say hello",
        result: "hello from the peer"
      })
    }).pipe(Effect.provide(toolkitLayer({ send: [A2ATransportTest.message("hello from the peer")] }))))

  it.effect("completed: the whole result, never cut; the task is its 200-character preview", () =>
    Effect.gen(function*() {
      const task = "t".repeat(150) + "u".repeat(150)
      const id = yield* delegateId(task)
      yield* awaitDone(id)
      const r = yield* checkTool({ task_id: id })
      expect(wire(r.encodedResult)).toEqual({
        task_id: id,
        workspace_id: PEER,
        status: "completed",
        task: task.slice(0, 200),
        result: "R".repeat(5_000)
      })
    }).pipe(Effect.provide(toolkitLayer({ send: [A2ATransportTest.message("R".repeat(5_000))] }))))

  it.effect("failed: {task_id, workspace_id, status, task, error}", () =>
    Effect.gen(function*() {
      const id = yield* delegateId("break")
      const done = yield* awaitWithTime(id)
      expect(done.status).toBe("failed")
      const r = yield* checkTool({ task_id: id })
      const json = wire(r.encodedResult)
      expect(json).toEqual({
        task_id: id,
        workspace_id: PEER,
        status: "failed",
        task: "break",
        error: done.error
      })
      expect(done.error).toContain("internal error")
    }).pipe(Effect.provide(toolkitLayer({ send: [A2ATransportTest.rpcError(-32603, "internal error")] }))))

  it.effect("failed after retries: the error names the refused connection", () =>
    Effect.gen(function*() {
      const id = yield* delegateId("anyone there?")
      yield* awaitWithTime(id)
      const r = yield* checkTool({ task_id: id })
      expect(wire(r.encodedResult)).toEqual({
        task_id: id,
        workspace_id: PEER,
        status: "failed",
        task: "anyone there?",
        error: expect.stringContaining("refused")
      })
    }).pipe(Effect.provide(toolkitLayer({ send: [A2ATransportTest.refused()] }))))

  it.effect("queued: no result and no error", () =>
    Effect.gen(function*() {
      const id = yield* delegateId("busy peer")
      expect((yield* awaitDone(id)).status).toBe("queued")
      const r = yield* checkTool({ task_id: id })
      expect(wire(r.encodedResult)).toEqual({ task_id: id, workspace_id: PEER, status: "queued", task: "busy peer" })
      // the check asked the platform for the outcome
      expect(yield* Effect.flatMap(PlatformMirrorTest.PlatformMirrorTest, (p) => p.listCalls)).toBe(1)
    }).pipe(Effect.provide(toolkitLayer({ send: [A2ATransportTest.queued({ queueId: "q-1", queueDepth: 1 })] }))))

  it.effect("queued, then the platform resolves it: the next check returns completed with the result", () =>
    Effect.gen(function*() {
      const id = yield* delegateId("busy peer")
      yield* awaitDone(id)
      const p = yield* PlatformMirrorTest.PlatformMirrorTest
      yield* p.setRows([row(id, "completed", { response_preview: "late answer" })])
      const r = yield* checkTool({ task_id: id })
      expect(wire(r.encodedResult)).toEqual({
        task_id: id,
        workspace_id: PEER,
        status: "completed",
        task: "busy peer",
        result: "late answer",
        // read from the platform's list: a preview
        result_is_preview: true
      })
    }).pipe(Effect.provide(toolkitLayer({ send: [A2ATransportTest.queued()] }))))

  it.effect("queued, then the platform fails it: the next check returns failed with the platform's error", () =>
    Effect.gen(function*() {
      const id = yield* delegateId("busy peer")
      yield* awaitDone(id)
      const p = yield* PlatformMirrorTest.PlatformMirrorTest
      yield* p.setRows([row(id, "failed", { error: "peer crashed" })])
      const r = yield* checkTool({ task_id: id })
      expect(wire(r.encodedResult)).toEqual({
        task_id: id,
        workspace_id: PEER,
        status: "failed",
        task: "busy peer",
        error: "Platform reported the delegation as failed: peer crashed"
      })
    }).pipe(Effect.provide(toolkitLayer({ send: [A2ATransportTest.queued()] }))))

  it.effect("pending / in_progress: no result and no error", () =>
    Effect.gen(function*() {
      const id = yield* delegateId("never answered")
      // straight after delegate the background fiber may not have started yet
      const early = wire((yield* checkTool({ task_id: id })).encodedResult)
      expect(early).toEqual({
        task_id: id,
        workspace_id: PEER,
        status: expect.stringMatching(/^(pending|in_progress)$/),
        task: "never answered"
      })
      yield* settle
      const r = yield* checkTool({ task_id: id })
      expect(wire(r.encodedResult)).toEqual({
        task_id: id,
        workspace_id: PEER,
        status: "in_progress",
        task: "never answered"
      })
    }).pipe(Effect.provide(toolkitLayer({ send: [Effect.never] }))))

  it.effect("an unknown id is {error}", () =>
    Effect.gen(function*() {
      const r = yield* checkTool({ task_id: "nonexistent" })
      expect(r.isFailure).toBe(false)
      expect(wire(r.encodedResult)).toEqual({ error: "No delegation found with id nonexistent" })
    }).pipe(Effect.provide(toolkitLayer({ send: [A2ATransportTest.message("done")] }))))
})

// --- check_delegation_status without a task_id (list mode) -----------------------------------------------

describe("check_delegation_status() lists every delegation", () => {
  const listLayer = () =>
    toolkitLayer({
      send: (request) =>
        request.text.startsWith("fail")
          ? A2ATransportTest.rpcError(-32000, "kaput")
          : request.text.startsWith("queue")
          ? A2ATransportTest.queued()
          : request.text.startsWith("hang")
          ? Effect.never
          : A2ATransportTest.message(request.text.startsWith("emoji") ? "😀".repeat(250) : "x".repeat(150) + "y".repeat(150)),
      peers: { [PEER]: "http://peer:8000", "ws-b": "http://b:8000" }
    })

  for (const params of [{}, { task_id: "" }] as const) {
    it.effect(`with ${JSON.stringify(params)}: {delegations: [...], count}, oldest first`, () =>
      Effect.gen(function*() {
        const completed = yield* delegateId("complete me")
        yield* awaitDone(completed)
        const failed = yield* delegateId("fail me", "ws-b")
        yield* awaitDone(failed)
        const queued = yield* delegateId("queue me")
        yield* awaitDone(queued)
        const hanging = yield* delegateId("hang")
        yield* settle

        const r = yield* checkTool(params)
        expect(r.isFailure).toBe(false)
        expect(wire(r.encodedResult)).toEqual({
          delegations: [
            {
              task_id: completed,
              workspace_id: PEER,
              status: "completed",
              task: "complete me",
              result_preview: "x".repeat(150) + "y".repeat(50)
            },
            {
              task_id: failed,
              workspace_id: "ws-b",
              status: "failed",
              task: "fail me",
              error: "JSON-RPC error -32000: kaput"
            },
            { task_id: queued, workspace_id: PEER, status: "queued", task: "queue me" },
            { task_id: hanging, workspace_id: PEER, status: "in_progress", task: "hang" }
          ],
          count: 4
        })
      }).pipe(Effect.provide(listLayer())))
  }

  it.effect("result_preview counts characters, never splitting a surrogate pair", () =>
    Effect.gen(function*() {
      const id = yield* delegateId("emoji please")
      yield* awaitDone(id)
      const r = yield* checkTool({})
      expect(wire(r.encodedResult)).toEqual({
        delegations: [
          { task_id: id, workspace_id: PEER, status: "completed", task: "emoji please", result_preview: "😀".repeat(200) }
        ],
        count: 1
      })
    }).pipe(Effect.provide(listLayer())))

  it.effect("an empty store lists nothing", () =>
    Effect.gen(function*() {
      const r = yield* checkTool({})
      expect(wire(r.encodedResult)).toEqual({ delegations: [], count: 0 })
    }).pipe(Effect.provide(listLayer())))

  it.effect("listing refreshes queued delegations from the platform", () =>
    Effect.gen(function*() {
      const id = yield* delegateId("queue me")
      yield* awaitDone(id)
      const p = yield* PlatformMirrorTest.PlatformMirrorTest
      yield* p.setRows([row(id, "completed", { response_preview: "drained" })])
      const r = yield* checkTool({})
      expect(wire(r.encodedResult)).toEqual({
        delegations: [{ task_id: id, workspace_id: PEER, status: "completed", task: "queue me", result_preview: "drained" }],
        count: 1
      })
      expect(yield* p.listCalls).toBe(1)
    }).pipe(Effect.provide(listLayer())))
})

describe("cancel_delegation()", () => {
  it.effect("cancels a running delegation: {task_id, workspace_id, status: cancelled, task, error}; check sees the same", () =>
    Effect.gen(function*() {
      const id = yield* delegateId("no longer needed")
      yield* settle
      const cancelled = yield* cancelTool(id)
      expect(cancelled.isFailure).toBe(false)
      expect(wire(cancelled.encodedResult)).toEqual({
        task_id: id,
        workspace_id: PEER,
        status: "cancelled",
        task: "no longer needed",
        error: "cancelled: cancelled by the host"
      })
      expect(wire((yield* checkTool({ task_id: id })).encodedResult)).toEqual(wire(cancelled.encodedResult))
    }).pipe(Effect.provide(toolkitLayer({ send: [Effect.never] }))))

  it.effect("a completed delegation or an unknown id is {error}", () =>
    Effect.gen(function*() {
      const id = yield* delegateId("quick")
      yield* awaitDone(id)
      const finished = wire((yield* cancelTool(id)).encodedResult)
      expect(finished).toEqual({ error: `Delegation ${id} is already completed; there is nothing to cancel` })
      const unknown = wire((yield* cancelTool("no-such-id")).encodedResult)
      expect(unknown).toEqual({ error: "No delegation found with id no-such-id" })
    }).pipe(Effect.provide(toolkitLayer({ send: [A2ATransportTest.message("done")] }))))
})
