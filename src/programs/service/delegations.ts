/**
 * The `Delegations` service: a `FiberMap` of running delegations over a `DelegationStore`
 * whose every write is announced (`changes`: the `changes` stream, `watch`, and the waiters of
 * `await`), owned by the scope of its layer. Closing the scope interrupts every running
 * delegation, and each one records itself as failed (`interrupted`); a finalizer fails those
 * that were still waiting for a place, and then wakes whoever still awaits one. Closing is
 * bounded (`DELEGATION_SHUTDOWN_TIMEOUT`, see ./closing.ts). Delegations waiting on the platform
 * are resolved by the reconciler (./reconciler.ts).
 *
 * `programs/service/` is the service's engine: this constructor and the parts only it uses
 * (admission, changes, closing, idempotency keys, the reconciler). It sits above the steps of the
 * delegation program (`../*.ts`) that it runs, and below the layers that build it
 * (`../../layers/DelegationsLayer.ts`); nothing under `programs/` imports it back.
 *
 * @internal
 */
import { DateTime, Deferred, Duration, Effect, Exit, Fiber, FiberMap, MutableHashMap, MutableHashSet, Option, PubSub, Queue, Stream } from "effect"
import type { Scope } from "effect"
import { bestEffort } from "../../internal/bestEffort.js"
import { currentTraceId } from "../../internal/tracing.js"
import { uuidV4 } from "../../internal/uuid.js"
import type { A2ATransport } from "../../services/A2ATransport.js"
import type { Audit } from "../../services/Audit.js"
import type { AwaitOptions, DelegateRequest, DelegationLookupError } from "../../services/Delegations.js"
import {
  AwaitTimeout,
  Delegation,
  DelegationAlreadyFinished,
  DelegationEvicted,
  DelegationId,
  DelegationNotFound,
  Delegations,
  Overloaded
} from "../../services/Delegations.js"
import type { DelegationStore } from "../../services/DelegationStore.js"
import type { Discovery } from "../../services/Discovery.js"
import type { PlatformMirror } from "../../services/PlatformMirror.js"
import { Rbac } from "../../services/Rbac.js"
import { cancelAtPeer, cancelledChange } from "../cancelDelegation.js"
import type { DelegationInput, Engine } from "../engine.js"
import { makeEngine, taskPreview, updateDelegation } from "../engine.js"
import { announce, interrupted } from "../recordOutcome.js"
import { refreshQueued } from "../refreshQueued.js"
import { retrack } from "../retrack.js"
import { runDelegation } from "../runDelegation.js"
import type { Settings } from "../settings.js"
import { copyRequest, requestedTarget, validate } from "../validate.js"
import * as Admission from "./admission.js"
import * as Changes from "./changes.js"
import * as Closing from "./closing.js"
import * as Keys from "./idempotency.js"
import * as Reconciler from "./reconciler.js"

type Fibers = FiberMap.FiberMap<string, Option.Option<Delegation>>

/**
 * The settings the service reads (the store's are the store layer's).
 *
 * @internal
 */
export type ServiceSettings = Omit<Settings, "history" | "retention" | "historyCap">

/** What the service's functions share; built once per layer. */
interface Runtime {
  readonly engine: Engine
  readonly reconciler: Reconciler.Reconciler
  readonly rbac: Rbac["Type"]
  readonly changes: Changes.Changes
  readonly fibers: Fibers
  readonly admission: Admission.Admission<Option.Option<Delegation>>
  readonly keys: Keys.Keys
  readonly maxPending: number
}

/**
 * Builds the service; its fibers live in the surrounding scope. `settings` are valid.
 *
 * @internal
 */
export const make = (
  settings: ServiceSettings
): Effect.Effect<
  Delegations["Type"],
  never,
  Scope.Scope | DelegationStore | Discovery | A2ATransport | PlatformMirror | Audit | Rbac
> =>
  Effect.gen(function*() {
    // Finalizers run last added, first run: the reconciler and the admission stop, the bound on
    // closing starts, the running fibers are interrupted (each records itself as failed), those that
    // never started are failed, whoever still awaits a delegation is woken (and reads the store), and
    // the bound's timer stops.
    const closing = yield* Closing.make(settings.shutdownTimeout)
    const changes = yield* Changes.make
    const engine = yield* makeEngine(settings, {
      abandonable: closing.abandonable,
      observe: (store) => Changes.observe(store, changes)
    })
    // A restarted host follows again what it had handed to the platform.
    if (engine.dispatch === "platform") yield* retrack(engine)
    yield* Effect.addFinalizer(() => abortPending(engine, "the Delegations layer was closed before the delegation started"))
    const fibers: Fibers = yield* FiberMap.make<string, Option.Option<Delegation>>()
    yield* Effect.addFinalizer(() => closing.start)
    const limits: Admission.Limits = {
      concurrency: settings.concurrency ?? Infinity,
      perPeer: settings.perPeerConcurrency ?? Infinity,
      maxPending: settings.maxPending ?? Infinity
    }
    const admission = limits.concurrency === Infinity && limits.perPeer === Infinity
      ? Admission.unbounded(fibers)
      : yield* Admission.bounded(fibers, limits)
    yield* Effect.addFinalizer(() => warnCutShort(admission))
    const reconciler = yield* Reconciler.start(engine)
    const rt: Runtime = {
      engine,
      reconciler,
      rbac: yield* Rbac,
      changes,
      fibers,
      admission,
      keys: yield* Keys.make,
      maxPending: limits.maxPending
    }
    return Delegations.of({
      delegate: (request) => delegate(rt, request),
      status: (id) => Effect.tap(statusOf(engine, id), (d) => markRead(engine, [d])),
      list: Effect.tap(list(engine), (all) => markRead(engine, all)),
      await: (id, options) => awaitFinal(rt, id, options),
      awaitSettled: (id) => Effect.tap(waitFor(rt, id, Changes.isSettled), (d) => markRead(engine, [d])),
      changes: Stream.fromPubSub(changes.pubsub),
      watch: (id) => watch(rt, id),
      cancel: (id) => cancel(rt, id),
      running: admission.size
    })
  })

// --- starting ---------------------------------------------------------------------------------------

/** RBAC, validation, and either the delegation with the same idempotency key or a new one. */
const delegate = Effect.fnUntraced(function*(rt: Runtime, request: DelegateRequest) {
  const { engine } = rt
  // Read once: RBAC's audit line, the checks and the delegation all see this copy.
  const copy = copyRequest(request)
  yield* rt.rbac.authorize("delegate").pipe(
    Effect.tapError((denied) =>
      Effect.flatMap(currentTraceId, (traceId) =>
        engine.audit.log({
          eventType: "rbac",
          action: "rbac.deny",
          resource: requestedTarget(copy),
          outcome: "denied",
          traceId,
          extra: { attempted_action: denied.action, roles: denied.roles }
        })).pipe(bestEffort("audit", { warnings: engine.warnings }))
    )
  )
  const valid = yield* Effect.flatMap(copy, (c) => validate(c, engine.workspaceId))
  const key = valid.idempotencyKey
  if (key === undefined) return yield* start(rt, valid)
  // One at a time, so that duplicates sent at once find the delegation the first one stored.
  return yield* rt.keys.lock.withPermits(1)(Effect.gen(function*() {
    const existing = yield* Keys.get(rt.keys, key)
    if (existing !== undefined && (yield* isReusable(engine, existing))) return existing
    const id = yield* start(rt, valid)
    yield* Keys.set(rt.keys, key, id)
    return id
  }))
})

/** A delegation that is live, or finished other than failed or cancelled, is the answer to a repeated request. */
const isReusable = (engine: Engine, id: string): Effect.Effect<boolean> =>
  Effect.map(engine.store.get(id), Option.match({
    onNone: () => false,
    onSome: (d) => d.status !== "failed" && d.status !== "cancelled"
  }))

/** A place or a waiting slot, the `pending` row, and the start of its work. */
const start = Effect.fnUntraced(function*(rt: Runtime, request: DelegateRequest) {
  const { admission, engine } = rt
  const { task, workspaceId } = request
  if (!(yield* admission.reserve(workspaceId))) {
    return yield* new Overloaded({ pending: yield* admission.pending, maxPending: rt.maxPending })
  }
  // A UUID just drawn: its brand needs no check.
  const id = DelegationId.make(yield* uuidV4, { disableValidation: true })
  const now = yield* DateTime.now
  const delegation = {
    id,
    workspaceId,
    task: taskPreview(task),
    status: "pending",
    attempts: 0,
    dispatch: engine.dispatch,
    createdAt: now,
    updatedAt: now
  } as const
  yield* engine.store.insert(new Delegation(delegation, { disableValidation: true })).pipe(
    Effect.onInterrupt(() => admission.cancelReservation)
  )
  const input: DelegationInput = { id, target: workspaceId, task }
  yield* admission.start(id, workspaceId, Effect.tap(runDelegation(engine, input), rt.reconciler.notice)).pipe(
    // A closed layer (or an interrupted caller) means the work never started: do not leave it pending.
    Effect.onInterrupt(() => abort(engine, id, "the Delegations layer is closed"))
  )
  return id
})

// --- reading ----------------------------------------------------------------------------------------

/** The stored delegation, or why there is none. */
const found = (engine: Engine, id: string): Effect.Effect<Delegation, DelegationLookupError> =>
  Effect.flatMap(engine.store.get(id), Option.match({
    onSome: Effect.succeed,
    onNone: () =>
      Effect.flatMap(evictionOf(engine, id), (eviction): Effect.Effect<never, DelegationLookupError> =>
        Option.isNone(eviction)
          ? Effect.fail(new DelegationNotFound({ id }))
          : Effect.fail(new DelegationEvicted({ id, reason: eviction.value.reason, evictedAt: eviction.value.at })))
  }))

const evictionOf = (engine: Engine, id: string) =>
  engine.store.evicted === undefined ? Effect.succeedNone : engine.store.evicted(id)

/** Notes the final states handed to a reader: from now on the store may evict them. */
const markRead = (engine: Engine, delegations: ReadonlyArray<Delegation>): Effect.Effect<void> => {
  const { markRead } = engine.store
  if (markRead === undefined) return Effect.void
  const ids = delegations.filter((d) => d.isFinished).map((d) => d.id)
  return ids.length === 0 ? Effect.void : markRead(ids)
}

/** The stored delegation; one waiting on the platform is asked of the platform first. */
const statusOf = (engine: Engine, id: string): Effect.Effect<Delegation, DelegationLookupError> =>
  Effect.flatMap(found(engine, id), (delegation) =>
    delegation.isWaitingOnPlatform
      ? Effect.zipRight(refreshQueued(engine, [id]), found(engine, id))
      : Effect.succeed(delegation))

/** Every stored delegation; those waiting on the platform are asked of the platform with one call. */
const list = (engine: Engine): Effect.Effect<ReadonlyArray<Delegation>> =>
  Effect.flatMap(engine.store.list, (all) => {
    const queued = all.filter((d) => d.isWaitingOnPlatform).map((d) => d.id)
    return queued.length === 0 ? Effect.succeed(all) : Effect.zipRight(refreshQueued(engine, queued), engine.store.list)
  })

// --- waiting ----------------------------------------------------------------------------------------

/**
 * The delegation once `done` holds for it, woken by the write that settles it (no polling). The
 * state that woke a waiter is returned even if the store has evicted it since. Once the layer has
 * closed, the stored state is returned as it is.
 */
const waitFor = (
  rt: Runtime,
  id: string,
  done: (delegation: Delegation) => boolean
): Effect.Effect<Delegation, DelegationLookupError> =>
  Effect.gen(function*() {
    const now = yield* found(rt.engine, id)
    if (done(now)) return yield* afterWork(rt, now)
    const settled = yield* Changes.nextSettled(rt.changes, id)
    // Read again: it may have settled between the first read and the registration.
    const again = yield* found(rt.engine, id)
    if (done(again)) {
      // Nothing will write a final state again: wake (and drop) the registration now.
      if (again.isFinished) yield* Changes.settledAlready(rt.changes, again)
      return yield* afterWork(rt, again)
    }
    const news = yield* Deferred.await(settled)
    if (Option.isNone(news)) return yield* found(rt.engine, id)
    return done(news.value) ? yield* afterWork(rt, news.value) : yield* waitFor(rt, id, done)
  })

/**
 * `delegation`, once its fiber has also done what follows the final write (metrics, audit, platform
 * mirror), so that a caller who awaited it sees all of that done.
 */
const afterWork = (rt: Runtime, delegation: Delegation): Effect.Effect<Delegation> =>
  Effect.suspend(() => {
    // Usually gone already; a lookup that allocates nothing then.
    const fiber = FiberMap.unsafeGet(rt.fibers, delegation.id)
    if (Option.isSome(fiber)) return Effect.as(Fiber.await(fiber.value), delegation)
    // Resolved by the reconciler or a refresh, which may still be mirroring it.
    const recording = MutableHashMap.get(rt.engine.finishing, delegation.id)
    return Option.isNone(recording) ? Effect.succeed(delegation) : Effect.as(Deferred.await(recording.value), delegation)
  })

/**
 * Through `queued` (or in flight on the platform) to the final state. A delegation waiting on the
 * platform is resolved by the layer's reconciler, which reads the platform once per round for every
 * waiting delegation; its write wakes the waiter.
 */
const untilFinal = (rt: Runtime, id: string): Effect.Effect<Delegation, DelegationLookupError> => waitFor(rt, id, isFinal)

const isFinal = (delegation: Delegation): boolean => delegation.isFinished

const awaitFinal = (rt: Runtime, id: string, options: AwaitOptions | undefined) => {
  const wait = Effect.tap(untilFinal(rt, id), (d) => markRead(rt.engine, [d]))
  if (options?.timeout === undefined) return wait
  const timeout = Duration.decode(options.timeout)
  return Effect.flatMap(Effect.timeoutOption(wait, timeout), Option.match({
    onSome: Effect.succeed,
    onNone: () =>
      Effect.flatMap(found(rt.engine, id), (d) =>
        Effect.fail(new AwaitTimeout({ id, millis: Duration.toMillis(timeout), lastStatus: d.status })))
  }))
}

/**
 * The current state, then each change of this delegation, ending with its final state. The final
 * state also comes from a waiter, so a watcher that fell behind its buffer still ends.
 */
const watch = (rt: Runtime, id: string): Stream.Stream<Delegation, DelegationLookupError> =>
  Stream.unwrapScoped(Effect.gen(function*() {
    const subscription = yield* PubSub.subscribe(rt.changes.pubsub)
    const current = yield* found(rt.engine, id)
    if (current.isFinished) return Stream.fromEffect(Effect.as(markRead(rt.engine, [current]), current))
    // What the subscription holds already was written before `current` was read.
    const before = yield* Queue.size(subscription)
    const later = Stream.fromQueue(subscription).pipe(
      Stream.drop(before),
      Stream.filter((d) => d.id === id && d !== current)
    )
    return Stream.make(current).pipe(
      Stream.concat(Stream.merge(later, Stream.fromEffect(untilFinal(rt, id)))),
      Stream.takeUntil(isFinal),
      Stream.tap((d) => d.isFinished ? markRead(rt.engine, [d]) : Effect.void)
    )
  }))

// --- cancelling -------------------------------------------------------------------------------------

const cancel = Effect.fnUntraced(function*(rt: Runtime, id: string) {
  const before = yield* found(rt.engine, id)
  if (before.status === "cancelled") return yield* Effect.as(markRead(rt.engine, [before]), before)
  if (before.status === "completed" || before.status === "failed") {
    return yield* new DelegationAlreadyFinished({ id, status: before.status })
  }
  const { cancelling } = rt.engine
  // Once begun, a cancel is seen through: a delegation must not be left without its fiber and unrecorded.
  return yield* Effect.uninterruptible(
    Effect.acquireUseRelease(
      Effect.sync(() => MutableHashSet.add(cancelling, id)),
      () => stop(rt, before),
      () => Effect.sync(() => MutableHashSet.remove(cancelling, id))
    )
  )
})

/** Takes it off the queue for a place or interrupts its fiber, cancels the peer's task, and records the outcome. */
const stop = Effect.fnUntraced(function*(rt: Runtime, before: Delegation) {
  const { engine } = rt
  const id = before.id
  yield* rt.admission.withdraw(id, before.workspaceId)
  const task = MutableHashMap.get(engine.following, id)
  yield* FiberMap.remove(rt.fibers, id)
  const cancelled = cancelledChange("cancelled by the host")
  // The peer cancel stays interruptible, so that its own timeout can cut it off.
  const change = Option.isNone(task) ? cancelled : yield* Effect.interruptible(cancelAtPeer(engine, id, task.value, cancelled)).pipe(
    Effect.exit,
    Effect.map(Exit.getOrElse(() => cancelled))
  )
  const final = yield* updateDelegation(engine, id, change, (d) => !d.isFinished)
  if (Option.isSome(final)) {
    yield* announce(engine, final.value)
    yield* markRead(engine, [final.value])
    return final.value
  }
  // It ended by itself (or another cancel won) in the meantime.
  const now = yield* found(engine, id)
  if (now.status === "completed" || now.status === "failed") {
    return yield* new DelegationAlreadyFinished({ id, status: now.status })
  }
  return now
})

// --- closing ----------------------------------------------------------------------------------------

/** Fails a delegation that never started. */
const abort = (engine: Engine, id: string, detail: string) => {
  const cause = interrupted(detail)
  return updateDelegation(engine, id, { status: "failed", error: cause.message, cause }, (d) => d.status === "pending")
}

const abortPending = (engine: Engine, detail: string) =>
  Effect.flatMap(engine.store.list, (all) =>
    Effect.forEach(all.filter((d) => d.status === "pending"), (d) => abort(engine, d.id, detail), { discard: true }))

// Delegations cut short by a closing layer are a common wiring mistake (a layer provided per request or per
// chat turn), so say so once, with the fix.
const warnCutShort = <A>(admission: Admission.Admission<A>) =>
  Effect.flatMap(admission.size, (running) =>
    running === 0 ? Effect.void : Effect.logWarning(
      `the Delegations layer closed with ${running} delegation(s) running; they end failed (interrupted). ` +
        "Build the layer once for the whole host (ManagedRuntime.make, Layer.launch), not per request or chat turn"
    ))
