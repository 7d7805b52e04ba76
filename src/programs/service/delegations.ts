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
import { DateTime, Deferred, Duration, Effect, Exit, Fiber, FiberMap, MutableHashMap, MutableHashSet, MutableRef, Option, PubSub, Queue, Schedule, Stream } from "effect"
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
import type { DelegationStore, DelegationStoreError, StoredDelegation } from "../../services/DelegationStore.js"
import type { Discovery } from "../../services/Discovery.js"
import type { PlatformMirror } from "../../services/PlatformMirror.js"
import { Rbac } from "../../services/Rbac.js"
import { cancelAtPeer, cancelledChange, PEER_CANCEL_TIMEOUT } from "../cancelDelegation.js"
import type { DelegationInput, Engine } from "../engine.js"
import { makeEngine, readRetried, taskPreview, UNFINISHED, updateDelegation } from "../engine.js"
import { announce, interrupted } from "../recordOutcome.js"
import { refreshQueued } from "../refreshQueued.js"
import { retrack } from "../retrack.js"
import { runDelegation } from "../runDelegation.js"
import type { Settings } from "../settings.js"
import { copyRequest, requestedTarget, validate } from "../validate.js"
import * as Admission from "./admission.js"
import * as Changes from "./changes.js"
import * as Closing from "./closing.js"
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
      atClose: closing.bounded,
      observe: (store) => Changes.observe(store, changes)
    })
    // A restarted host follows again what it had handed to the platform (a durable store has kept it).
    if (engine.dispatch === "platform" && !engine.store.shared) yield* retrack(engine)
    yield* Effect.addFinalizer(() =>
      engine.store.shared
        ? releaseAll(engine)
        : abortPending(engine, "the Delegations layer was closed before the delegation started"))
    const fibers: Fibers = yield* FiberMap.make<string, Option.Option<Delegation>>()
    yield* Effect.addFinalizer(() => closing.start)
    // Over a shared store, what this replica runs is released to the others, not failed.
    if (engine.store.shared) yield* Effect.addFinalizer(() => Effect.sync(() => MutableRef.set(engine.releasing, true)))
    const limits: Admission.Limits = {
      concurrency: settings.concurrency ?? Infinity,
      perPeer: settings.perPeerConcurrency ?? Infinity,
      maxPending: settings.maxPending ?? Infinity
    }
    const admission = limits.concurrency === Infinity && limits.perPeer === Infinity
      ? Admission.unbounded(fibers)
      : yield* Admission.bounded(fibers, limits)
    yield* Effect.addFinalizer(() => warnCutShort(engine, admission))
    const reconciler = yield* Reconciler.start(engine)
    const rt: Runtime = {
      engine,
      reconciler,
      rbac: yield* Rbac,
      changes,
      fibers,
      admission,
      maxPending: limits.maxPending
    }
    if (engine.store.shared) yield* startReplica(rt)
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
  return yield* start(rt, valid)
})

/**
 * A place or a waiting slot, the `pending` row (unless the idempotency key finds the delegation that
 * answers for it, on any replica: the store decides, atomically), and the start of its work.
 */
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
  const created = yield* engine.store.create({
    delegation: new Delegation(delegation, { disableValidation: true }),
    origin: engine.workspaceId,
    task,
    idempotencyKey: request.idempotencyKey,
    owner: engine.replicaId,
    leaseMillis: engine.leaseMillis
  }).pipe(Effect.onExit((exit) => Exit.isSuccess(exit) ? Effect.void : admission.cancelReservation))
  if (created._tag === "Existing") {
    yield* admission.cancelReservation
    return created.stored.delegation.id
  }
  const input: DelegationInput = { id, target: workspaceId, task }
  yield* admission.start(id, workspaceId, Effect.tap(runDelegation(engine, input), rt.reconciler.notice)).pipe(
    // A closed layer (or an interrupted caller) means the work never started: do not leave it pending.
    Effect.onInterrupt(() => abort(engine, id, "the Delegations layer is closed"))
  )
  return id
})

// --- reading ----------------------------------------------------------------------------------------

/** The stored delegation, or why there is none. */
const found = (engine: Engine, id: string): Effect.Effect<Delegation, DelegationLookupError | DelegationStoreError> =>
  Effect.map(storedOf(engine, id), (stored) => stored.delegation)

/** The stored delegation with what the store keeps beside it (its owner), or why there is none. */
const storedOf = (engine: Engine, id: string): Effect.Effect<StoredDelegation, DelegationLookupError | DelegationStoreError> =>
  Effect.flatMap(engine.store.get(id), Option.match({
    onSome: Effect.succeed,
    onNone: () =>
      Effect.flatMap(engine.store.evicted(id), (eviction): Effect.Effect<never, DelegationLookupError> =>
        Option.isNone(eviction)
          ? Effect.fail(new DelegationNotFound({ id }))
          : Effect.fail(new DelegationEvicted({ id, reason: eviction.value.reason, evictedAt: eviction.value.at })))
  }))

/** Notes the final states handed to a reader: from now on the store may evict them. */
const markRead = (engine: Engine, delegations: ReadonlyArray<Delegation>): Effect.Effect<void, DelegationStoreError> => {
  const ids = delegations.filter((d) => d.isFinished).map((d) => d.id)
  return ids.length === 0 ? Effect.void : engine.store.markRead(ids)
}

/** The stored delegation; one waiting on the platform is asked of the platform first. */
const statusOf = (engine: Engine, id: string): Effect.Effect<Delegation, DelegationLookupError | DelegationStoreError> =>
  Effect.flatMap(found(engine, id), (delegation) =>
    delegation.isWaitingOnPlatform
      ? Effect.zipRight(refreshQueued(engine, [id]), found(engine, id))
      : Effect.succeed(delegation))

/**
 * The newest delegations of this workspace (`LIST_LIMIT`); those waiting on the platform are asked of
 * the platform with one call.
 */
const list = (engine: Engine): Effect.Effect<ReadonlyArray<Delegation>, DelegationStoreError> => {
  const read = Effect.map(engine.store.list(engine.workspaceId, LIST_LIMIT), (page) => page.map((s) => s.delegation))
  return Effect.flatMap(read, (all) => {
    const queued = all.filter((d) => d.isWaitingOnPlatform).map((d) => d.id)
    return queued.length === 0 ? Effect.succeed(all) : Effect.zipRight(refreshQueued(engine, queued), read)
  })
}

/**
 * Delegations `list` returns at most (the newest).
 *
 * @internal
 */
export const LIST_LIMIT = 1000

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
): Effect.Effect<Delegation, DelegationLookupError | DelegationStoreError> =>
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
    // Over a shared store another replica may be the one writing it: its writes are read, too.
    const news = rt.engine.store.shared
      ? yield* Effect.raceFirst(Deferred.await(settled), Effect.asSome(pollUntil(rt, id, done)))
      : yield* Deferred.await(settled)
    if (Option.isNone(news)) return yield* found(rt.engine, id)
    return done(news.value) ? yield* afterWork(rt, news.value) : yield* waitFor(rt, id, done)
  })

/**
 * How often a replica reads a delegation another replica runs, while someone waits for it.
 *
 * @internal
 */
export const REMOTE_POLL = Duration.millis(500)

/** The stored delegation, read every `REMOTE_POLL` until `done` holds (an unavailable store is read again). */
const pollUntil = (
  rt: Runtime,
  id: string,
  done: (delegation: Delegation) => boolean
): Effect.Effect<Delegation, DelegationLookupError | DelegationStoreError> =>
  Effect.sleep(REMOTE_POLL).pipe(
    Effect.zipRight(found(rt.engine, id)),
    Effect.retry({ schedule: Schedule.spaced(REMOTE_POLL), while: (e) => e._tag === "DelegationStoreError" }),
    Effect.flatMap((d) =>
      done(d) ? Effect.as(Changes.settledAlready(rt.changes, d), d) : pollUntil(rt, id, done))
  )

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
const untilFinal = (rt: Runtime, id: string): Effect.Effect<Delegation, DelegationLookupError | DelegationStoreError> =>
  waitFor(rt, id, isFinal)

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
const watch = (rt: Runtime, id: string): Stream.Stream<Delegation, DelegationLookupError | DelegationStoreError> =>
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
  const stored = yield* storedOf(rt.engine, id)
  const before = stored.delegation
  if (before.status === "cancelled") return yield* Effect.as(markRead(rt.engine, [before]), before)
  if (before.status === "completed" || before.status === "failed") {
    return yield* new DelegationAlreadyFinished({ id, status: before.status })
  }
  if (stored.owner !== undefined && stored.owner !== rt.engine.replicaId) return yield* cancelElsewhere(rt, id)
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

/**
 * A delegation another replica runs: the store carries the request to its owner, which stops it
 * (see `startReplica`), or to whichever replica takes it over if the owner is gone. Waits for the
 * outcome, at most a lease, a round of claims and the peer cancel's bound.
 */
const cancelElsewhere = Effect.fnUntraced(function*(rt: Runtime, id: string) {
  const { engine } = rt
  yield* engine.store.requestCancel(id)
  const bound = Duration.sum(Duration.millis(engine.leaseMillis * 1.5), PEER_CANCEL_TIMEOUT)
  const final = yield* Effect.timeoutOption(untilFinal(rt, id), bound)
  const now = Option.isSome(final) ? final.value : yield* found(engine, id)
  if (now.status === "completed" || now.status === "failed") {
    return yield* new DelegationAlreadyFinished({ id, status: now.status })
  }
  yield* markRead(engine, [now])
  return now
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
  const final = yield* updateDelegation(engine, id, change, UNFINISHED)
  if (Option.isSome(final)) {
    const cancelled = final.value.delegation
    yield* announce(engine, cancelled)
    yield* markRead(engine, [cancelled])
    return cancelled
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
  return updateDelegation(engine, id, { status: "failed", error: cause.message, cause }, ["pending"])
}

const abortPending = (engine: Engine, detail: string) =>
  Effect.flatMap(readRetried(engine.store.unfinished(engine.workspaceId, engine.replicaId)), (mine) =>
    Effect.forEach(
      mine.filter((s) => s.delegation.status === "pending"),
      (s) => abort(engine, s.delegation.id, detail),
      { discard: true }
    ))

/** Over a shared store: every lease this replica holds ends now, so the other replicas take its delegations over. */
const releaseAll = (engine: Engine) =>
  engine.store.release(engine.replicaId).pipe(
    Effect.catchAll((error) =>
      Effect.logWarning("the delegations of this replica could not be released; the others take them over when their leases expire", error))
  )

// Delegations cut short by a closing layer are a common wiring mistake (a layer provided per request or per
// chat turn), so say so once, with the fix.
const warnCutShort = <A>(engine: Engine, admission: Admission.Admission<A>) =>
  Effect.flatMap(admission.size, (running) =>
    running === 0 ? Effect.void : engine.store.shared ?
    Effect.logInfo(`the Delegations layer closed with ${running} delegation(s) running; they are released to the replicas sharing the store`) :
    Effect.logWarning(
      `the Delegations layer closed with ${running} delegation(s) running; they end failed (interrupted). ` +
        "Build the layer once for the whole host (ManagedRuntime.make, Layer.launch), not per request or chat turn"
    ))

// --- replicas ---------------------------------------------------------------------------------------

/** Delegations one claim round takes over at most. */
const CLAIM_BATCH = 50

/** How often the owner looks for cancel requests made on other replicas. */
const CANCEL_POLL = Duration.millis(500)

/**
 * Over a shared store, three loops in the layer's scope: the leases of what this replica runs are
 * renewed (a delegation whose lease another replica took is stopped here); delegations whose lease
 * expired (a replica crashed, or closed and released them) are claimed and resumed; and cancels
 * requested on other replicas are carried out.
 */
const startReplica = Effect.fnUntraced(function*(rt: Runtime) {
  const every = Duration.millis(Math.max(rt.engine.leaseMillis / 3, 10))
  const loop = (name: string, round: Effect.Effect<void, DelegationStoreError>, spacing: Duration.Duration) =>
    Effect.forkScoped(
      round.pipe(
        Effect.catchAll((error) => Effect.logWarning(`${name}: the delegation store failed; trying again`, error)),
        Effect.repeat(Schedule.spaced(spacing)),
        Effect.interruptible
      )
    )
  yield* loop("lease renewal", renewRound(rt), every)
  yield* loop("takeover", claimRound(rt), every)
  yield* loop("cancel requests", cancelRound(rt), CANCEL_POLL)
  const written = rt.engine.store.written
  if (written !== undefined) yield* Effect.forkScoped(wakeOnWrites(rt, written))
})

/**
 * Wakes this replica's waiters as soon as another replica writes what they wait for (PostgreSQL
 * `LISTEN`); the 500 ms reads of `await` stay as the fallback. A dropped feed is listened to again.
 */
const wakeOnWrites = (rt: Runtime, written: Stream.Stream<string, DelegationStoreError>) =>
  written.pipe(
    Stream.runForEach((id) =>
      MutableHashMap.has(rt.changes.waiters, id)
        ? rt.engine.store.get(id).pipe(
          Effect.flatMap(Option.match({
            onNone: () => Effect.void,
            onSome: (stored) =>
              Changes.isSettled(stored.delegation) ? Changes.settledAlready(rt.changes, stored.delegation) : Effect.void
          })),
          Effect.catchAll(() => Effect.void)
        )
        : Effect.void
    ),
    Effect.catchAll((error) => Effect.logDebug("the store's write feed stopped; listening again", error)),
    Effect.repeat(Schedule.spaced(Duration.seconds(1))),
    Effect.interruptible
  )

const renewRound = Effect.fnUntraced(function*(rt: Runtime) {
  const { engine } = rt
  const held = new Set(yield* engine.store.renew(engine.replicaId, engine.leaseMillis))
  for (const [id] of rt.fibers) {
    if (held.has(id)) continue
    const stored = yield* engine.store.get(id)
    // Finished (its fiber is recording what follows), or gone: nothing to stop.
    if (Option.isNone(stored) || stored.value.delegation.isFinished || stored.value.owner === engine.replicaId) continue
    yield* Effect.logInfo("another replica took this delegation over; this one stops").pipe(
      Effect.annotateLogs({ delegation_id: id, owner: stored.value.owner ?? "" })
    )
    yield* FiberMap.remove(rt.fibers, id)
  }
})

const claimRound = Effect.fnUntraced(function*(rt: Runtime) {
  const { engine } = rt
  const claimed = yield* engine.store.claim({
    origin: engine.workspaceId,
    owner: engine.replicaId,
    leaseMillis: engine.leaseMillis,
    limit: CLAIM_BATCH
  })
  yield* Effect.forEach(claimed, (stored) => resumeClaimed(rt, stored), { discard: true })
})

/** A delegation this replica now owns: cancelled if that was asked, left to the reconciler if it waits on the platform, or resumed. */
const resumeClaimed = Effect.fnUntraced(function*(rt: Runtime, stored: StoredDelegation) {
  const { admission, engine } = rt
  const { delegation } = stored
  const { id, workspaceId: target } = delegation
  // Its lease had lapsed here (the store was out of reach), but it still runs here.
  if (FiberMap.unsafeHas(rt.fibers, id)) return
  yield* Effect.logInfo("resuming a delegation taken over from another replica").pipe(
    Effect.annotateLogs({ delegation_id: id, status: delegation.status, attempts: delegation.attempts })
  )
  if (stored.cancelRequested) {
    return yield* cancel(rt, id).pipe(Effect.catchAll((error) => Effect.logDebug("a requested cancel ended", error)))
  }
  if (delegation.isWaitingOnPlatform) return yield* rt.reconciler.notice(Option.some(delegation))
  if (!(yield* admission.reserve(target))) return yield* engine.store.release(engine.replicaId, [id])
  const input: DelegationInput = { id, target, task: stored.task ?? delegation.task }
  yield* admission.start(id, target, Effect.tap(runDelegation(engine, input, delegation), rt.reconciler.notice))
})

const cancelRound = Effect.fnUntraced(function*(rt: Runtime) {
  const ids = yield* rt.engine.store.cancelRequests(rt.engine.replicaId)
  yield* Effect.forEach(ids, (id) =>
    cancel(rt, id).pipe(Effect.catchAll((error) => Effect.logDebug("a requested cancel ended", error))), { discard: true })
})
