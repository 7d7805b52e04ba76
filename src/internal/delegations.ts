/**
 * The `Delegations` service: a `FiberMap` of running delegations over a `DelegationStore`,
 * owned by the scope of its layer, and the outcome of every delegation whose work is not over,
 * for `awaitSettled`. Closing the scope interrupts every running delegation, and each one
 * records itself as failed (`interrupted`); a finalizer fails those that were still waiting
 * for a place.
 *
 * @internal
 */
import { DateTime, Deferred, Effect, FiberMap, MutableHashMap, Option, Schedule } from "effect"
import type { Scope } from "effect"
import type { Settings } from "../layers/DelegationsLayer.js"
import type { DelegationInput, Engine } from "../programs/engine.js"
import { makeEngine, taskPreview, updateDelegation } from "../programs/engine.js"
import { interrupted } from "../programs/recordOutcome.js"
import { refreshQueued } from "../programs/refreshQueued.js"
import { retrack } from "../programs/retrack.js"
import { runDelegation } from "../programs/runDelegation.js"
import { copyRequest, requestedTarget, validate } from "../programs/validate.js"
import type { A2ATransport } from "../services/A2ATransport.js"
import type { Audit } from "../services/Audit.js"
import type { DelegateRequest } from "../services/Delegations.js"
import { Delegation, DelegationId, DelegationNotFound, Delegations } from "../services/Delegations.js"
import type { DelegationStore } from "../services/DelegationStore.js"
import type { Discovery } from "../services/Discovery.js"
import type { PlatformMirror } from "../services/PlatformMirror.js"
import { Rbac } from "../services/Rbac.js"
import { bestEffort } from "./bestEffort.js"
import * as Admission from "./admission.js"
import * as Closing from "./closing.js"
import * as Reconciler from "./reconciler.js"
import { currentTraceId } from "./tracing.js"
import { uuidV4 } from "./uuid.js"

type Fibers = FiberMap.FiberMap<string, Option.Option<Delegation>>

/**
 * The outcome of every delegation whose own work is not over yet (waiting for a place or
 * running): the state it left, or `None` when it was cut short (read the store then).
 */
type Outcomes = MutableHashMap.MutableHashMap<string, Deferred.Deferred<Option.Option<Delegation>>>

/**
 * Builds the service; its fibers live in the surrounding scope. `settings` are valid.
 *
 * @internal
 */
export const make = (
  settings: Omit<Settings, "history">
): Effect.Effect<
  Delegations["Type"],
  never,
  Scope.Scope | DelegationStore | Discovery | A2ATransport | PlatformMirror | Audit | Rbac
> =>
  Effect.gen(function*() {
    const closing = yield* Closing.make(settings.shutdownTimeout)
    const engine = yield* makeEngine(settings, closing.abandonable)
    const rbac = yield* Rbac
    // A restarted host follows again what it had handed to the platform.
    if (engine.dispatch === "platform") yield* retrack(engine)
    const outcomes: Outcomes = MutableHashMap.empty()
    // Finalizers run last added, first run: the dispatcher stops, then the running fibers are
    // interrupted (each records itself as failed), then those that never started are failed, and
    // then whoever still awaits an outcome reads the store.
    yield* Effect.addFinalizer(() => settleAll(outcomes))
    yield* Effect.addFinalizer(() => abortPending(engine, "the Delegations layer was closed before the delegation started"))
    const fibers: Fibers = yield* FiberMap.make<string, Option.Option<Delegation>>()
    yield* Effect.addFinalizer(() => closing.start)
    yield* Effect.addFinalizer(() => warnCutShort(outcomes))
    const admission = settings.concurrency === undefined
      ? Admission.unbounded(fibers)
      : yield* Admission.bounded(fibers, settings.concurrency)
    const reconciler = yield* Reconciler.start(engine)
    const start = (input: DelegationInput, outcome: Deferred.Deferred<Option.Option<Delegation>>) =>
      admission.start(
        input.id,
        Effect.tap(
          runDelegation(engine, input),
          (final) => Effect.zipRight(settle(outcomes, input.id, outcome, final), reconciler.notice(final))
        )
      )
    const status = (id: string) => statusOf(engine, id)
    const awaitSettled = (id: string) => awaitOutcome(engine, outcomes, id)
    return Delegations.of({
      delegate: (request) => delegate(engine, rbac, outcomes, request, start),
      status,
      list: list(engine),
      await: (id) => Effect.flatMap(awaitSettled(id), (d) => d.isWaitingOnPlatform ? untilResolved(engine, id) : Effect.succeed(d)),
      awaitSettled,
      running: Effect.sync(() => MutableHashMap.size(outcomes))
    })
  })

/** RBAC, validation, the `pending` row, and the start of its work. */
const delegate = Effect.fnUntraced(function*(
  engine: Engine,
  rbac: Rbac["Type"],
  outcomes: Outcomes,
  request: DelegateRequest,
  start: (input: DelegationInput, outcome: Deferred.Deferred<Option.Option<Delegation>>) => Effect.Effect<void>
) {
  // Read once: RBAC's audit line, the checks and the delegation all see this copy.
  const copy = copyRequest(request)
  yield* rbac.authorize("delegate").pipe(
    Effect.tapError((denied) =>
      Effect.flatMap(currentTraceId, (traceId) =>
        engine.audit.log({
          eventType: "rbac",
          action: "rbac.deny",
          resource: requestedTarget(copy),
          outcome: "denied",
          traceId,
          extra: { attempted_action: denied.action, roles: denied.roles }
        })).pipe(bestEffort("audit"))
    )
  )
  const { task, workspaceId } = yield* Effect.flatMap(copy, (c) => validate(c, engine.workspaceId))
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
  yield* engine.store.insert(new Delegation(delegation, { disableValidation: true }))
  const outcome = yield* Deferred.make<Option.Option<Delegation>>()
  MutableHashMap.set(outcomes, id, outcome)
  yield* start({ id, target: workspaceId, task }, outcome).pipe(
    // A closed layer (or an interrupted caller) means the work never started: do not leave it pending.
    Effect.onInterrupt(() => Effect.zipRight(abort(engine, id, "the Delegations layer is closed"), settle(outcomes, id, outcome, Option.none())))
  )
  return id
})

/** Hands the outcome to whoever awaits it; the delegation's own work is over. */
const settle = (
  outcomes: Outcomes,
  id: string,
  outcome: Deferred.Deferred<Option.Option<Delegation>>,
  final: Option.Option<Delegation>
) =>
  Effect.suspend(() => {
    MutableHashMap.remove(outcomes, id)
    return Deferred.succeed(outcome, final)
  })

const settleAll = (outcomes: Outcomes) =>
  Effect.forEach(Array.from(outcomes), ([id, outcome]) => settle(outcomes, id, outcome, Option.none()), { discard: true })

const found = (engine: Engine, id: string): Effect.Effect<Delegation, DelegationNotFound> =>
  Effect.flatMap(engine.store.get(id), Option.match({
    onNone: () => Effect.fail(new DelegationNotFound({ id })),
    onSome: Effect.succeed
  }))

/** The stored delegation; one waiting on the platform is asked of the platform first. */
const statusOf = (engine: Engine, id: string): Effect.Effect<Delegation, DelegationNotFound> =>
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

/** The state the delegation's work left (readable even once a small history has evicted it), else the stored one. */
const awaitOutcome = (engine: Engine, outcomes: Outcomes, id: string): Effect.Effect<Delegation, DelegationNotFound> =>
  Effect.suspend(() =>
    Option.match(MutableHashMap.get(outcomes, id), {
      onNone: () => found(engine, id),
      onSome: (outcome) =>
        Effect.flatMap(Deferred.await(outcome), Option.match({ onNone: () => found(engine, id), onSome: Effect.succeed }))
    })
  )

/**
 * A delegation waiting on the platform is resolved by the platform, not by its fiber: the reconciler
 * reads it in the background; ask the platform on the poll schedule too.
 */
const untilResolved = (engine: Engine, id: string): Effect.Effect<Delegation, DelegationNotFound> => {
  const pollSchedule: Schedule.Schedule<unknown, Delegation> = engine.pollSchedule
  return statusOf(engine, id).pipe(
    Effect.repeat({ schedule: Schedule.passthrough(pollSchedule), until: (d) => !d.isWaitingOnPlatform })
  )
}

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
const warnCutShort = (outcomes: Outcomes) =>
  Effect.suspend(() => {
    const running = MutableHashMap.size(outcomes)
    return running === 0 ? Effect.void : Effect.logWarning(
      `the Delegations layer closed with ${running} delegation(s) running; they end failed (interrupted). ` +
        "Build the layer once for the whole host (ManagedRuntime.make, Layer.launch), not per request or chat turn"
    )
  })
