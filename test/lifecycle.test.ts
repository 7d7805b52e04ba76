/**
 * The lifecycle a host relies on: waiting to the end, watching, cancelling, de-duplicating,
 * limits per peer and on waiting delegations, and keeping outcomes until they are read.
 */
import { describe, expect, it } from "@effect/vitest"
import {
  A2ATransportTest,
  AuditMemory,
  AwaitTimeout,
  DelegationAlreadyFinished,
  DelegationEvicted,
  Delegations,
  InvalidDelegation,
  Overloaded,
  PlatformMirrorTest
} from "effect-a2a-delegation"
import type { Delegation, PlatformDelegationRow } from "effect-a2a-delegation"
import { Chunk, Deferred, Duration, Effect, Fiber, Ref, Schedule, Stream, TestClock } from "effect"
import { PEER, PEER_URL, testLayer } from "./fixtures/layers.js"

const transport = A2ATransportTest.A2ATransportTest
const sentCount = Effect.flatMap(transport, (t) => Effect.map(t.sent, (all) => all.length))
const platform = PlatformMirrorTest.PlatformMirrorTest

/** Lets background fibers run until they block (on the TestClock or forever). */
const settle = TestClock.adjust("0 millis")

const row = (delegationId: string, status: string, extra: Partial<PlatformDelegationRow> = {}): PlatformDelegationRow => ({
  delegation_id: delegationId,
  type: "delegation",
  status,
  ...extra
})

const FAST = "fast-peer"
const HUNG = "hung-peer"

// --- waiting ------------------------------------------------------------------------------------------

describe("await", () => {
  it.effect("waits through queued to the final state, woken by the write that resolves it", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      const id = yield* d.delegate({ workspaceId: PEER, task: "busy peer" })
      const waiting = yield* Effect.fork(d.await(id))
      yield* settle
      expect((yield* d.status(id)).status).toBe("queued")
      expect(waiting.unsafePoll()).toBeNull()
      // The platform resolves it; a status() read by someone else writes the resolution, and that write
      // wakes the waiter at once: the hour-long poll schedule never comes round.
      yield* Effect.flatMap(platform, (p) => p.setRows([row(id, "completed", { response_preview: "late answer" })]))
      expect((yield* d.status(id)).status).toBe("completed")
      const done = yield* Fiber.join(waiting)
      expect(done.status).toBe("completed")
      expect(done.result).toBe("late answer")
    }).pipe(Effect.provide(testLayer({
      send: [A2ATransportTest.queued({ queueId: "q-1" })],
      settings: { pollSchedule: Schedule.spaced("1 hour") }
    }))))

  it.effect("asks the platform about a queued delegation on the poll schedule meanwhile", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      const id = yield* d.delegate({ workspaceId: PEER, task: "busy peer" })
      const waiting = yield* Effect.fork(d.await(id))
      yield* settle
      yield* Effect.flatMap(platform, (p) => p.setRows([row(id, "failed", { error: "peer crashed" })]))
      yield* TestClock.adjust("1 minute")
      const done = yield* Fiber.join(waiting)
      expect(done.status).toBe("failed")
      expect(done.error).toContain("peer crashed")
    }).pipe(Effect.provide(testLayer({
      send: [A2ATransportTest.queued()],
      settings: { pollSchedule: Schedule.spaced("1 minute") }
    }))))

  it.effect("with a timeout, fails with AwaitTimeout and leaves the delegation running", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      const id = yield* d.delegate({ workspaceId: PEER, task: "slow" })
      const waiting = yield* Effect.fork(Effect.flip(d.await(id, { timeout: "5 seconds" })))
      yield* TestClock.adjust("5 seconds")
      const error = yield* Fiber.join(waiting)
      expect(error).toBeInstanceOf(AwaitTimeout)
      expect(error).toMatchObject({ id, millis: 5000, lastStatus: "in_progress" })
      expect((yield* d.status(id)).status).toBe("in_progress")
      expect(yield* d.running).toBe(1)
    }).pipe(Effect.provide(testLayer({ send: [Effect.never] }))))

  it.effect("a timeout longer than the work returns the final state", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      const id = yield* d.delegate({ workspaceId: PEER, task: "retry once" })
      const waiting = yield* Effect.fork(d.await(id, { timeout: "1 minute" }))
      yield* TestClock.adjust("5 seconds")
      expect((yield* Fiber.join(waiting)).status).toBe("completed")
    }).pipe(Effect.provide(testLayer({ send: [A2ATransportTest.refused(), A2ATransportTest.message("done")] }))))
})

// --- watching -----------------------------------------------------------------------------------------

/** The statuses a delegation goes through, in order, without repeats. */
const statusPath = (changes: ReadonlyArray<Delegation>, id: string): ReadonlyArray<string> =>
  changes.filter((c) => c.id === id).map((c) => c.status).filter((s, i, all) => i === 0 || all[i - 1] !== s)

describe("changes and watch", () => {
  it.effect("changes carries every state change of 100 concurrent delegations, in order per delegation", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      const seen = yield* Ref.make<ReadonlyArray<Delegation>>([])
      yield* Effect.fork(Stream.runForEach(d.changes, (c) => Ref.update(seen, (all) => [...all, c])))
      yield* settle
      const ids = yield* Effect.forEach(
        Array.from({ length: 100 }, (_, i) => `task ${i}`),
        (task) => d.delegate({ workspaceId: PEER, task }),
        { concurrency: "unbounded" }
      )
      yield* Effect.forEach(ids, (id) => d.await(id), { concurrency: "unbounded", discard: true })
      yield* settle
      const all = yield* Ref.get(seen)
      for (const id of ids) {
        expect(statusPath(all, id)).toEqual(["pending", "in_progress", "completed"])
        const times = all.filter((c) => c.id === id).map((c) => c.updatedAt.epochMillis)
        expect(times).toEqual([...times].sort((a, b) => a - b))
        expect(all.filter((c) => c.id === id).at(-1)?.result).toBe("done")
      }
    }).pipe(Effect.provide(testLayer({ send: [A2ATransportTest.message("done")] }))))

  it.effect("a subscriber that does not keep up never holds delegations up; it loses its oldest changes", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      const gate = yield* Deferred.make<void>()
      const seen = yield* Ref.make<ReadonlyArray<Delegation>>([])
      // Stuck on the first change it takes, until the gate opens.
      yield* Effect.fork(Stream.runForEach(d.changes, (c) => Effect.zipRight(Deferred.await(gate), Ref.update(seen, (all) => [...all, c]))))
      yield* settle
      const ids = yield* Effect.forEach(
        Array.from({ length: 300 }, (_, i) => `task ${i}`),
        (task) => d.delegate({ workspaceId: PEER, task }),
        { concurrency: "unbounded" }
      )
      const done = yield* Effect.forEach(ids, (id) => d.await(id), { concurrency: "unbounded" })
      expect(done.every((x) => x.status === "completed")).toBe(true)
      yield* Deferred.succeed(gate, undefined)
      yield* settle
      const all = yield* Ref.get(seen)
      // 300 delegations wrote 1,200 changes: the one in hand, then the newest 1,024 that were buffered.
      expect(all.length).toBe(1 + 1024)
      expect(all[0]).toMatchObject({ id: ids[0], status: "pending" })
      expect(all.at(-1)?.status).toBe("completed")
      // What it lost are the oldest changes: among them `pending` ones, written first.
      expect(all.slice(1).filter((c) => c.status === "pending").length).toBeLessThan(299)
    }).pipe(Effect.provide(testLayer({ send: [A2ATransportTest.message("done")] }))))

  it.effect("watch gives the current state, then each change, and ends after the final state", () =>
    Effect.gen(function*() {
      const latch = yield* Deferred.make<void>()
      const program = Effect.gen(function*() {
        const d = yield* Delegations
        const id = yield* d.delegate({ workspaceId: PEER, task: "wait for the latch" })
        yield* settle
        const watching = yield* Effect.fork(Stream.runCollect(d.watch(id)))
        yield* settle
        yield* Deferred.succeed(latch, undefined)
        const seen = Chunk.toReadonlyArray(yield* Fiber.join(watching))
        expect(seen[0]?.status).toBe("in_progress")
        expect(seen.at(-1)?.status).toBe("completed")
        expect(seen.at(-1)?.result).toBe("done")
        expect(seen.filter((x) => x.isFinished)).toHaveLength(1)
        // A finished delegation's watch is its final state alone.
        const again = Chunk.toReadonlyArray(yield* Stream.runCollect(d.watch(id)))
        expect(again.map((x) => x.status)).toEqual(["completed"])
      })
      yield* program.pipe(Effect.provide(testLayer({
        send: () => Effect.as(Deferred.await(latch), A2ATransportTest.message("done"))
      })))
    }))
})

// --- cancelling ---------------------------------------------------------------------------------------

describe("cancel", () => {
  it.effect("a delegation waiting for a place is taken off the queue and never sent", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      const first = yield* d.delegate({ workspaceId: PEER, task: "holds the only place" })
      const second = yield* d.delegate({ workspaceId: PEER, task: "waits" })
      yield* settle
      expect((yield* d.status(second)).status).toBe("pending")
      expect(yield* d.running).toBe(2)
      const cancelled = yield* d.cancel(second)
      expect(cancelled.status).toBe("cancelled")
      expect(cancelled.error).toMatch(/^cancelled/)
      expect(cancelled.cause).toMatchObject({ _tag: "DelegationAborted", reason: "cancelled" })
      expect(yield* d.running).toBe(1)
      yield* TestClock.adjust("1 hour")
      expect(yield* sentCount).toBe(1)
      expect((yield* d.status(first)).status).toBe("in_progress")
      expect((yield* d.status(second)).status).toBe("cancelled")
    }).pipe(Effect.provide(testLayer({ send: [Effect.never], settings: { concurrency: 1 } }))))

  it.effect("a running delegation gives its place back: the next waiting one starts", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      const first = yield* d.delegate({ workspaceId: PEER, task: "hangs" })
      const second = yield* d.delegate({ workspaceId: PEER, task: "next" })
      yield* settle
      expect((yield* d.cancel(first)).status).toBe("cancelled")
      yield* settle
      expect((yield* d.status(second)).status).toBe("in_progress")
      expect(yield* sentCount).toBe(2)
      expect(yield* d.running).toBe(1)
    }).pipe(Effect.provide(testLayer({ send: [Effect.never], settings: { concurrency: 1 } }))))

  it.effect("an unknown id is DelegationNotFound, for cancel and watch alike", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      expect(yield* Effect.flip(d.cancel("no-such-id"))).toMatchObject({ _tag: "DelegationNotFound", id: "no-such-id" })
      const watched = yield* Effect.flip(Stream.runCollect(d.watch("no-such-id")))
      expect(watched).toMatchObject({ _tag: "DelegationNotFound", id: "no-such-id" })
    }).pipe(Effect.provide(testLayer({ send: [A2ATransportTest.message("done")] }))))

  it.effect("during retries: the wait is interrupted, no further attempt, mirrored as failed (cancelled)", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      const id = yield* d.delegate({ workspaceId: PEER, task: "peer down" })
      const waiting = yield* Effect.fork(d.await(id))
      yield* TestClock.adjust("2 seconds")
      expect(yield* sentCount).toBe(1)
      const cancelled = yield* d.cancel(id)
      expect(cancelled.status).toBe("cancelled")
      expect((yield* Fiber.join(waiting)).status).toBe("cancelled")
      yield* TestClock.adjust("10 minutes")
      expect(yield* sentCount).toBe(1)
      expect(yield* Effect.flatMap(transport, (t) => t.canceled)).toEqual([])
      const updates = yield* Effect.flatMap(platform, (p) => p.updates)
      expect(updates).toEqual([{ delegationId: id, status: "failed", error: cancelled.error, responsePreview: "" }])
      const notes = yield* Effect.flatMap(platform, (p) => p.notifications)
      expect(notes.map((n) => n.message)).toEqual([`Delegation ${id} to ${PEER} was cancelled.`])
      const audits = (yield* Effect.flatMap(AuditMemory.AuditMemory, (a) => a.records))
        .filter((r) => r.event_type === "delegation" && r.delegation_id === id)
      expect(audits.map((r) => r.outcome)).toEqual(["dispatched", "failure"])
      expect(audits[1]).toMatchObject({ reason: "cancelled", last_error: cancelled.error })
      expect(yield* d.running).toBe(0)
    }).pipe(Effect.provide(testLayer({ send: [A2ATransportTest.refused()] }))))

  it.effect("while following a working task: CancelTask is sent for it, in the version it was created in", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      const id = yield* d.delegate({ workspaceId: PEER, task: "long job" })
      yield* TestClock.adjust("2 seconds")
      expect((yield* d.status(id)).taskId).toBe("task-9")
      const cancelled = yield* d.cancel(id)
      expect(cancelled.status).toBe("cancelled")
      const requests = yield* Effect.flatMap(transport, (t) => t.canceled)
      expect(requests.map((r) => ({ taskId: r.taskId, url: r.endpoint.url, version: r.protocol.version }))).toEqual([
        { taskId: "task-9", url: PEER_URL, version: cancelled.protocolVersion }
      ])
      const polls = (yield* Effect.flatMap(transport, (t) => t.polled)).length
      yield* TestClock.adjust("1 hour")
      expect((yield* Effect.flatMap(transport, (t) => t.polled)).length).toBe(polls)
    }).pipe(Effect.provide(testLayer({
      send: [A2ATransportTest.task("working", { id: "task-9" })],
      getTask: [A2ATransportTest.task("working", { id: "task-9" })],
      cancelTask: [A2ATransportTest.task("canceled", { id: "task-9" })]
    }))))

  it.effect("a peer answer 'not cancelable' (-32002) is reconciled with a task read: a completed task keeps its answer", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      const id = yield* d.delegate({ workspaceId: PEER, task: "nearly done" })
      yield* TestClock.adjust("2 seconds")
      const final = yield* d.cancel(id)
      expect(final.status).toBe("completed")
      expect(final.result).toBe("the answer")
      expect((yield* Effect.flatMap(transport, (t) => t.canceled)).length).toBe(1)
      expect((yield* d.status(id)).status).toBe("completed")
    }).pipe(Effect.provide(testLayer({
      send: [A2ATransportTest.task("working", { id: "task-1" })],
      getTask: (_request, index) =>
        index < 2
          ? A2ATransportTest.task("working", { id: "task-1" })
          : A2ATransportTest.task("completed", { id: "task-1", text: "the answer" }),
      cancelTask: [A2ATransportTest.rpcError(-32002, "Task not cancelable")]
    }))))

  it.effect("a peer that does not answer the cancel in time leaves it cancelled", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      const id = yield* d.delegate({ workspaceId: PEER, task: "long job" })
      yield* TestClock.adjust("2 seconds")
      const cancelling = yield* Effect.fork(d.cancel(id))
      yield* TestClock.adjust("10 seconds")
      expect((yield* Fiber.join(cancelling)).status).toBe("cancelled")
    }).pipe(Effect.provide(testLayer({
      send: [A2ATransportTest.task("working")],
      getTask: [A2ATransportTest.task("working")],
      cancelTask: [Effect.never]
    }))))

  it.effect("after the end: a completed delegation cannot be cancelled; cancelling twice is harmless", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      const done = yield* d.delegate({ workspaceId: PEER, task: "quick" })
      expect((yield* d.await(done)).status).toBe("completed")
      const error = yield* Effect.flip(d.cancel(done))
      expect(error).toBeInstanceOf(DelegationAlreadyFinished)
      expect(error).toMatchObject({ id: done, status: "completed" })
      expect((yield* d.status(done)).status).toBe("completed")
      const queued = yield* d.delegate({ workspaceId: PEER, task: "queue me" })
      expect((yield* d.awaitSettled(queued)).status).toBe("queued")
      const once = yield* d.cancel(queued)
      const twice = yield* d.cancel(queued)
      expect(once.status).toBe("cancelled")
      expect(twice).toEqual(once)
      const updates = yield* Effect.flatMap(platform, (p) => p.updates)
      expect(updates.filter((u) => u.delegationId === queued).map((u) => u.status)).toEqual(["failed"])
    }).pipe(Effect.provide(testLayer({
      send: (request) => request.text === "queue me" ? A2ATransportTest.queued() : A2ATransportTest.message("done")
    }))))
})

// --- de-duplicating -----------------------------------------------------------------------------------

describe("idempotencyKey", () => {
  it.effect("concurrent duplicate calls make one delegation", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      const ids = yield* Effect.all(
        Array.from({ length: 20 }, () => d.delegate({ workspaceId: PEER, task: "once", idempotencyKey: "order-42" })),
        { concurrency: "unbounded" }
      )
      expect(new Set(ids).size).toBe(1)
      expect((yield* d.await(ids[0]!)).status).toBe("completed")
      expect(yield* sentCount).toBe(1)
      // A finished (completed) one still answers the key; another key is another delegation.
      expect(yield* d.delegate({ workspaceId: PEER, task: "once", idempotencyKey: "order-42" })).toBe(ids[0])
      expect(yield* d.delegate({ workspaceId: PEER, task: "once", idempotencyKey: "order-43" })).not.toBe(ids[0])
      expect((yield* d.list).length).toBe(2)
    }).pipe(Effect.provide(testLayer({ send: [A2ATransportTest.message("done")] }))))

  it.effect("a failed or cancelled delegation is replaced by a new one", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      const first = yield* d.delegate({ workspaceId: PEER, task: "x", idempotencyKey: "k" })
      expect((yield* d.await(first)).status).toBe("failed")
      const second = yield* d.delegate({ workspaceId: PEER, task: "x", idempotencyKey: "k" })
      expect(second).not.toBe(first)
      yield* d.cancel(second)
      const third = yield* d.delegate({ workspaceId: PEER, task: "x", idempotencyKey: "k" })
      expect(third).not.toBe(second)
    }).pipe(Effect.provide(testLayer({
      send: (_request, index) => index === 0 ? A2ATransportTest.rpcError(-32603, "boom") : Effect.never
    }))))

  it.effect("keys are bounded in length", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      const error = yield* Effect.flip(d.delegate({ workspaceId: PEER, task: "x", idempotencyKey: "k".repeat(257) }))
      expect(error).toBeInstanceOf(InvalidDelegation)
      expect(error).toMatchObject({ field: "idempotencyKey", rule: "max_length" })
      const empty = yield* Effect.flip(d.delegate({ workspaceId: PEER, task: "x", idempotencyKey: "" }))
      expect(empty).toMatchObject({ field: "idempotencyKey", rule: "required" })
      expect(yield* d.delegate({ workspaceId: PEER, task: "x", idempotencyKey: "k".repeat(256) })).toBeTypeOf("string")
      expect((yield* d.list).length).toBe(1)
    }).pipe(Effect.provide(testLayer({ send: [A2ATransportTest.message("done")] }))))
})

// --- limits -------------------------------------------------------------------------------------------

describe("limits", () => {
  it.effect("a hung peer holds only its own places: a fast peer's delegations run beside it", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      const hung = yield* Effect.forEach([1, 2, 3], (i) => d.delegate({ workspaceId: HUNG, task: `hung ${i}` }))
      const fast = yield* Effect.forEach([1, 2, 3, 4, 5], (i) => d.delegate({ workspaceId: FAST, task: `fast ${i}` }))
      const done = yield* Effect.forEach(fast, (id) => d.await(id))
      expect(done.map((x) => x.status)).toEqual(["completed", "completed", "completed", "completed", "completed"])
      const statuses = yield* Effect.forEach(hung, (id) => Effect.map(d.status(id), (x) => x.status))
      expect(statuses).toEqual(["in_progress", "pending", "pending"])
      const sentTo = (yield* Effect.flatMap(transport, (t) => t.sent)).map((s) => s.endpoint.id)
      expect(sentTo.filter((w) => w === HUNG)).toHaveLength(1)
      expect(yield* d.running).toBe(3)
    }).pipe(Effect.provide(testLayer({
      send: (request) => request.endpoint.id === HUNG ? Effect.never : A2ATransportTest.message("done"),
      peers: { [HUNG]: "http://hung:8000", [FAST]: "http://fast:8000" },
      settings: { concurrency: 2, perPeerConcurrency: 1 }
    }))))

  it.effect("past DELEGATION_MAX_PENDING, delegate fails at once with Overloaded and stores nothing", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      yield* d.delegate({ workspaceId: PEER, task: "runs" })
      yield* d.delegate({ workspaceId: PEER, task: "waits 1" })
      yield* d.delegate({ workspaceId: PEER, task: "waits 2" })
      const error = yield* Effect.flip(d.delegate({ workspaceId: PEER, task: "one too many" }))
      expect(error).toBeInstanceOf(Overloaded)
      expect(error).toMatchObject({ pending: 2, maxPending: 2 })
      expect((yield* d.list).map((x) => x.task)).toEqual(["runs", "waits 1", "waits 2"])
    }).pipe(Effect.provide(testLayer({ send: [Effect.never], settings: { concurrency: 1, maxPending: 2 } }))))
})

// --- keeping outcomes ---------------------------------------------------------------------------------

describe("keeping outcomes until read", () => {
  it.effect("1,000 delegations started at once and awaited in order, default configuration: every outcome is read", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      const ids = yield* Effect.forEach(
        Array.from({ length: 1000 }, (_, i) => `task ${i}`),
        (task) => d.delegate({ workspaceId: PEER, task }),
        { concurrency: "unbounded" }
      )
      yield* settle
      const outcomes = yield* Effect.forEach(ids, (id) => Effect.either(d.await(id)))
      const read = outcomes.filter((o) => o._tag === "Right" && o.right.status === "completed")
      expect(read).toHaveLength(1000)
      // Read once, they may go now: beyond the default history of 100, the next finish evicts them.
      expect((yield* d.list).length).toBe(1000)
      const one = yield* d.delegate({ workspaceId: PEER, task: "one more" })
      yield* d.await(one)
      expect((yield* d.list).length).toBe(100)
      const after = yield* Effect.forEach(ids, (id) => Effect.flip(d.status(id)).pipe(Effect.option))
      const evicted = after.filter((e) => e._tag === "Some" && e.value instanceof DelegationEvicted)
      expect(evicted).toHaveLength(1001 - 100)
    }).pipe(Effect.provide(testLayer({ send: [A2ATransportTest.message("done")] }))))

  it.effect("an unread outcome is kept beyond the history until DELEGATION_RETENTION has passed", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      const finish = (task: string) =>
        Effect.flatMap(d.delegate({ workspaceId: PEER, task }), (id) => Effect.as(settle, id))
      const unread = yield* Effect.forEach(["a", "b", "c"], finish)
      // Nobody read them: all three stay although the history is 1.
      for (const id of unread) expect((yield* d.status(id)).status).toBe("completed")
      const older = yield* Effect.forEach(["d", "e"], finish)
      yield* TestClock.adjust("61 seconds")
      // Past the retention, the next finish evicts every unread one beyond the history.
      yield* finish("f")
      const error = yield* Effect.flip(d.status(older[0]!))
      expect(error).toBeInstanceOf(DelegationEvicted)
      expect(error).toMatchObject({ reason: "history" })
      expect((error as DelegationEvicted).message).toContain("DELEGATION_RETENTION")
    }).pipe(Effect.provide(testLayer({
      send: [A2ATransportTest.message("done")],
      settings: { history: 1, retention: Duration.seconds(60) }
    }))))

  it.effect("reading with status or list lets a finished delegation go beyond the history", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      const finish = (task: string) =>
        Effect.flatMap(d.delegate({ workspaceId: PEER, task }), (id) => Effect.as(settle, id))
      const [a, b] = yield* Effect.forEach(["a", "b"], finish)
      // Unread, both stay although the history is 1.
      expect((yield* d.list).length).toBe(2) // ...and this list reads them both
      yield* finish("c")
      expect(yield* Effect.flip(d.status(a!))).toMatchObject({ _tag: "DelegationEvicted", reason: "history" })
      expect(yield* Effect.flip(d.status(b!))).toMatchObject({ _tag: "DelegationEvicted", reason: "history" })
      expect((yield* d.list).map((x) => x.task)).toEqual(["c"])
    }).pipe(Effect.provide(testLayer({ send: [A2ATransportTest.message("done")], settings: { history: 1 } }))))

  it.effect("the hard cap bounds unread outcomes too: an id evicted under it says so", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      const ids = yield* Effect.forEach(["a", "b", "c", "d"], (task) =>
        Effect.flatMap(d.delegate({ workspaceId: PEER, task }), (id) => Effect.as(settle, id)))
      const error = yield* Effect.flip(d.status(ids[0]!))
      expect(error).toBeInstanceOf(DelegationEvicted)
      expect(error).toMatchObject({ id: ids[0], reason: "cap" })
      expect((error as DelegationEvicted).message).toContain("DELEGATION_HISTORY_CAP")
      expect((yield* d.list).map((x) => x.id)).toEqual(ids.slice(1))
    }).pipe(Effect.provide(testLayer({
      send: [A2ATransportTest.message("done")],
      settings: { history: 1, historyCap: 3 }
    }))))
})
