/**
 * Several replicas of one host over one shared store: the memory store built `shared`, with one
 * `Delegations` layer per replica over it, and one scripted peer behind all of them (what it
 * receives is counted once, whichever replica sent it). Time is the TestClock.
 */
import { describe, expect, it } from "@effect/vitest"
import {
  A2ATransportTest,
  AuditMemory,
  Delegations,
  DelegationsLayer,
  DelegationStore,
  DelegationStoreMemory,
  DiscoveryTest,
  PlatformMirrorTest,
  RbacTest
} from "effect-a2a-delegation"
import type { GetTask, SendMessage, SendReply, TaskReply } from "effect-a2a-delegation"
import { Context, Deferred, Duration, Effect, Exit, Fiber, Layer, Option, Scope, TestClock } from "effect"
import { PEER, PEER_URL, settings } from "./fixtures/layers.js"

const LEASE = Duration.seconds(30)

/** The peer and the platform every replica talks to, built once. */
const world = (options: {
  readonly send: A2ATransportTest.Script<SendMessage, SendReply>
  readonly getTask?: A2ATransportTest.Script<GetTask, TaskReply>
}) =>
  Layer.build(Layer.mergeAll(
    A2ATransportTest.layer({ send: options.send, getTask: options.getTask }),
    DiscoveryTest.layer({ [PEER]: PEER_URL }),
    PlatformMirrorTest.layer(),
    AuditMemory.layer({ workspaceId: "ws-self" }),
    RbacTest.layer({ allow: true })
  ))

type World = Effect.Effect.Success<ReturnType<typeof world>>

/** One replica's layer over `store`, in its own scope (closed by the test to stop the replica). */
const replica = Effect.fnUntraced(function*(
  replicaId: string,
  store: DelegationStore["Type"],
  services: World,
  overrides: Partial<DelegationsLayer.Settings> = {}
) {
  const scope = yield* Scope.make()
  const context = yield* Layer.buildWithScope(
    DelegationsLayer.layerCoreWithoutStore(settings({ replicaId, lease: LEASE, ...overrides })).pipe(
      Layer.provide(Layer.succeedContext(Context.add(services, DelegationStore, store)))
    ),
    scope
  )
  return { delegations: Context.get(context, Delegations), scope }
})

const sharedStore = DelegationStoreMemory.make({ history: 100, shared: true })

/** A store a crashed replica leaves behind: it releases nothing when its layer closes. */
const crashing = (store: DelegationStore["Type"]): DelegationStore["Type"] => ({ ...store, release: () => Effect.void })

const sentOf = (services: World) => Context.get(services, A2ATransportTest.A2ATransportTest).sent

/** Lets every fiber run, moving the clock by `step` `times` times. */
const advance = (step: Duration.DurationInput, times = 1) =>
  Effect.forEach(Array.from({ length: times }), () => TestClock.adjust(step), { discard: true })

describe("replicas over one shared store", () => {
  it.scoped("await on replica B returns replica A's outcome, read within a second of the write", () =>
    Effect.gen(function*() {
      const answer = yield* Deferred.make<SendReply>()
      const services = yield* world({ send: [Deferred.await(answer)] })
      const store = yield* sharedStore
      const a = yield* replica("a", store, services)
      const b = yield* replica("b", store, services)
      const id = yield* a.delegations.delegate({ workspaceId: PEER, task: "on a" })
      const waiting = yield* Effect.fork(b.delegations.await(id))
      yield* advance("100 millis", 2)
      yield* Deferred.succeed(answer, A2ATransportTest.message("done on a"))
      yield* advance("100 millis", 10)
      const final = yield* Fiber.join(waiting)
      expect(final.status).toBe("completed")
      expect(final.result).toBe("done on a")
      expect((yield* b.delegations.status(id)).status).toBe("completed")
      expect((yield* b.delegations.list).map((d) => d.id)).toEqual([id])
    }))

  it.scoped("cancel on replica B stops the delegation replica A runs", () =>
    Effect.gen(function*() {
      const services = yield* world({ send: [A2ATransportTest.task("working", { id: "peer-task" })], getTask: [A2ATransportTest.task("working", { id: "peer-task" })] })
      const store = yield* sharedStore
      const a = yield* replica("a", store, services)
      const b = yield* replica("b", store, services)
      const id = yield* a.delegations.delegate({ workspaceId: PEER, task: "long" })
      yield* advance("1 second", 2)
      expect((yield* b.delegations.status(id)).taskId).toBe("peer-task")
      const cancelling = yield* Effect.fork(b.delegations.cancel(id))
      yield* advance("250 millis", 8)
      const cancelled = yield* Fiber.join(cancelling)
      expect(cancelled.status).toBe("cancelled")
      // The owner carried it out: its fiber is gone, and the peer's task was cancelled once.
      expect(yield* a.delegations.running).toBe(0)
      const canceled = yield* Context.get(services, A2ATransportTest.A2ATransportTest).canceled
      expect(canceled.map((c) => c.taskId)).toEqual(["peer-task"])
    }))

  it.scoped("one idempotency key on two replicas makes one delegation and one peer request", () =>
    Effect.gen(function*() {
      const services = yield* world({ send: [A2ATransportTest.message("once")] })
      const store = yield* sharedStore
      const a = yield* replica("a", store, services)
      const b = yield* replica("b", store, services)
      const [first, second] = yield* Effect.all([
        a.delegations.delegate({ workspaceId: PEER, task: "same", idempotencyKey: "k-1" }),
        b.delegations.delegate({ workspaceId: PEER, task: "same", idempotencyKey: "k-1" })
      ], { concurrency: "unbounded" })
      expect(second).toBe(first)
      yield* advance("1 second")
      expect((yield* b.delegations.await(first)).status).toBe("completed")
      expect((yield* sentOf(services)).length).toBe(1)
    }))

  it.scoped("a crashed replica's followed task is taken over once its lease expires, with no second send", () =>
    Effect.gen(function*() {
      const services = yield* world({
        send: [A2ATransportTest.task("working", { id: "peer-task" })],
        getTask: (_request, index) =>
          index < 3 ? A2ATransportTest.task("working", { id: "peer-task" }) : A2ATransportTest.task("completed", { id: "peer-task", text: "finished by b" })
      })
      const store = yield* sharedStore
      const a = yield* replica("a", crashing(store), services)
      const id = yield* a.delegations.delegate({ workspaceId: PEER, task: "survives a" })
      yield* advance("1 second")
      yield* Scope.close(a.scope, Exit.void)
      // A is gone and held its lease: still in progress, owned by A.
      const held = yield* store.get(id)
      expect(Option.map(held, (s) => [s.delegation.status, s.owner])).toEqual(Option.some(["in_progress", "a"]))
      const b = yield* replica("b", store, services)
      yield* advance("5 seconds", 8)
      const final = yield* b.delegations.await(id)
      expect(final.status).toBe("completed")
      expect(final.result).toBe("finished by b")
      expect((yield* sentOf(services)).length).toBe(1)
    }))

  it.scoped("a request that may have reached the peer is not sent again by the replica that takes it over", () =>
    Effect.gen(function*() {
      const services = yield* world({ send: [Effect.never] })
      const store = yield* sharedStore
      const a = yield* replica("a", crashing(store), services)
      const id = yield* a.delegations.delegate({ workspaceId: PEER, task: "maybe delivered" })
      yield* advance("1 second")
      yield* Scope.close(a.scope, Exit.void)
      const b = yield* replica("b", store, services)
      yield* advance("5 seconds", 8)
      const final = yield* b.delegations.await(id)
      expect(final.status).toBe("failed")
      expect(final.cause?._tag).toBe("DelegationUnresolved")
      expect(final.error).toContain("DELEGATION_RESUME=resend")
      expect((yield* sentOf(services)).length).toBe(1)
    }))

  it.scoped("DELEGATION_RESUME=resend sends it again with the same messageId", () =>
    Effect.gen(function*() {
      const services = yield* world({ send: [Effect.never, A2ATransportTest.message("second copy")] })
      const store = yield* sharedStore
      const a = yield* replica("a", crashing(store), services)
      const id = yield* a.delegations.delegate({ workspaceId: PEER, task: "resend me" })
      yield* advance("1 second")
      yield* Scope.close(a.scope, Exit.void)
      const b = yield* replica("b", store, services, { resume: "resend" })
      yield* advance("5 seconds", 8)
      const final = yield* b.delegations.await(id)
      expect(final.status).toBe("completed")
      const sent = yield* sentOf(services)
      expect(sent.map((s) => s.messageId)).toEqual([id, id])
      expect(final.attempts).toBe(2)
    }))

  it.scoped("closing a replica releases its delegations: another one starts them at once, and none is failed", () =>
    Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      const services = yield* world({
        send: (_request, index) =>
          index === 0 ? Effect.never : Effect.as(Deferred.await(gate), A2ATransportTest.message("after release"))
      })
      const store = yield* sharedStore
      const a = yield* replica("a", store, services, { concurrency: 1 })
      const running = yield* a.delegations.delegate({ workspaceId: PEER, task: "running on a" })
      const waiting = yield* a.delegations.delegate({ workspaceId: PEER, task: "waiting for a place on a" })
      yield* advance("1 second")
      yield* Scope.close(a.scope, Exit.void)
      for (const id of [running, waiting]) {
        const released = yield* store.get(id)
        expect(Option.map(released, (s) => s.delegation.status === "failed")).toEqual(Option.some(false))
      }
      const b = yield* replica("b", store, services, { resume: "resend" })
      yield* Deferred.succeed(gate, undefined)
      yield* advance("1 second", 12)
      expect((yield* b.delegations.await(waiting)).result).toBe("after release")
      expect((yield* b.delegations.await(running)).status).toBe("completed")
    }))

  it.scoped("a replica that lost its lease stops, and cannot overwrite the new owner's state", () =>
    Effect.gen(function*() {
      const services = yield* world({
        send: [A2ATransportTest.task("working", { id: "peer-task" })],
        getTask: [A2ATransportTest.task("working", { id: "peer-task" })]
      })
      const store = yield* sharedStore
      // A cannot renew (cut off from the store for renewals), so its lease runs out while it still runs.
      const a = yield* replica("a", { ...store, renew: () => Effect.succeed([]) }, services)
      const id = yield* a.delegations.delegate({ workspaceId: PEER, task: "contested" })
      yield* advance("1 second")
      const b = yield* replica("b", store, services)
      yield* advance("5 seconds", 8)
      expect(Option.map(yield* store.get(id), (s) => s.owner)).toEqual(Option.some("b"))
      expect(yield* a.delegations.running).toBe(0)
      expect(yield* b.delegations.running).toBe(1)
      yield* Scope.close(b.scope, Exit.void)
    }))
})
