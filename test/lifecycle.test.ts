/**
 * The lifecycle a host relies on: waiting to the end, watching, cancelling, de-duplicating,
 * limits per peer and on waiting delegations, and keeping outcomes until they are read.
 */
import { describe, expect, it } from "@effect/vitest"
import {
  A2ATransportTest,
  AwaitTimeout,
  DelegationAlreadyFinished,
  DelegationEvicted,
  Delegations,
  InvalidDelegation,
  Overloaded,
  PlatformMirrorTest
} from "effect-a2a-delegation"
import type { Delegation, PlatformDelegationRow } from "effect-a2a-delegation"
import { Chunk, Deferred, Effect, Fiber, Ref, Schedule, Stream, TestClock } from "effect"
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
