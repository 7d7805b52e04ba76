/**
 * What every step of the delegation program works with: the services (resolved once,
 * when the `Delegations` layer is built), the settings, and the delegation at hand.
 *
 * @internal
 */
import { Cause, DateTime, Deferred, Duration, Effect, Either, MutableHashMap, MutableHashSet, MutableRef, Option, Schedule } from "effect"
import type { Scope } from "effect"
import { bestEffort } from "../internal/bestEffort.js"
import { uuidV4 } from "../internal/uuid.js"
import { QUEUED_TIMEOUT, RECONCILE_INTERVAL } from "../internal/waitDefaults.js"
import * as Warnings from "../internal/warnings.js"
import type { A2AError, PeerProtocol } from "../services/A2ATransport.js"
import { A2ATransport } from "../services/A2ATransport.js"
import type { AuditEvent } from "../services/Audit.js"
import { Audit } from "../services/Audit.js"
import type { Delegation, DelegationId, DelegationStatus, DispatchMode } from "../services/Delegations.js"
import type { DelegationChange, DelegationStoreError, StoredDelegation } from "../services/DelegationStore.js"
import { DelegationStore, UNFINISHED } from "../services/DelegationStore.js"
import { Discovery } from "../services/Discovery.js"
import type { PeerEndpoint } from "../services/Discovery.js"
import { PlatformMirror, truncate } from "../services/PlatformMirror.js"
import * as Outbox from "./mirrorOutbox.js"
import { DEFAULT_RETRY_AFTER_MAX, retryPolicy } from "./retryPolicy.js"
import type { Settings } from "./settings.js"

/**
 * The settings the delegation program reads.
 *
 * @internal
 */
export type ProgramSettings = Pick<
  Settings,
  "workspaceId" | "retrySchedule" | "pollSchedule" | "timeout" | "mirrorTimeout" | "retryAfterMax" | "dispatch" | "queuedTimeout"
  | "reconcileInterval" | "replicaId" | "lease" | "resume" | "streaming"
>

/**
 * The services and settings, as the steps take them.
 *
 * @internal
 */
export interface Engine {
  /** This workspace (the origin of every delegation it stores). */
  readonly workspaceId: string
  readonly store: DelegationStore["Type"]
  /** This replica: the owner of the delegations it runs. */
  readonly replicaId: string
  /** How long a lease on a delegation lasts, in milliseconds (renewed at a third of it). */
  readonly leaseMillis: number
  /** What a replica does with a delegation it took over whose request may already have been delivered. */
  readonly resume: "fail" | "resend"
  /** Peers that stream are followed as Server-Sent Events (`DELEGATION_STREAMING=auto`). */
  readonly streaming: boolean
  /**
   * Set while a layer over a shared store closes: its interrupted delegations record nothing, their
   * leases are released, and another replica finishes them.
   */
  readonly releasing: MutableRef.MutableRef<boolean>
  readonly discovery: Discovery["Type"]
  readonly transport: A2ATransport["Type"]
  readonly mirror: PlatformMirror["Type"]
  /** Delivers the writes of the platform's rows (record, update) until the platform acknowledges them. */
  readonly outbox: Outbox.Outbox
  /** The layer's warnings, one line per kind and interval. */
  readonly warnings: Warnings.Warnings
  readonly audit: Audit["Type"]
  /** The host's retry schedule with `Retry-After` and the retry events (see `retryPolicy`). */
  readonly retrySchedule: Schedule.Schedule<unknown, A2AError>
  readonly pollSchedule: Schedule.Schedule<unknown, unknown>
  readonly timeout: Duration.Duration
  readonly mirrorTimeout: Duration.Duration | undefined
  /** Runs a delegation's platform calls after its outcome is stored, within the layer's bound on closing. */
  readonly abandonable: <R>(effect: Effect.Effect<void, never, R>) => Effect.Effect<void, never, R>
  readonly dispatch: DispatchMode
  /** How long a delegation may wait on the platform. */
  readonly queuedTimeout: Duration.Duration
  readonly reconcileInterval: { readonly initial: Duration.Duration; readonly max: Duration.Duration }
  /** The peer task each delegation is following, for `cancel` to cancel it at the peer. */
  readonly following: MutableHashMap.MutableHashMap<string, FollowedTask>
  /** Delegations `cancel` is stopping: their interrupted fiber records nothing, `cancel` does. */
  readonly cancelling: MutableHashSet.MutableHashSet<string>
  /**
   * Delegations whose outcome is being recorded outside their own fiber (the reconciler, a refresh):
   * the work that follows the write (metrics, audit, platform mirror), for `await` to wait for.
   */
  readonly finishing: MutableHashMap.MutableHashMap<string, Deferred.Deferred<void>>
}

/**
 * A peer task being followed: where and in which version it was created.
 *
 * @internal
 */
export interface FollowedTask {
  readonly endpoint: PeerEndpoint
  readonly protocol: PeerProtocol
  readonly taskId: string
}

/**
 * Resolves the services once, and starts the layer's outbox and warnings in the current scope.
 * `observe` wraps the store (the service announces every write through it).
 *
 * @internal
 */
export const makeEngine = (
  settings: ProgramSettings,
  options: {
    readonly abandonable?: Engine["abandonable"] | undefined
    /** Bounds the outbox's last round at close. */
    readonly atClose?: ((effect: Effect.Effect<void>) => Effect.Effect<void>) | undefined
    readonly observe?: ((store: DelegationStore["Type"]) => DelegationStore["Type"]) | undefined
  } = {}
): Effect.Effect<Engine, never, Scope.Scope | DelegationStore | Discovery | A2ATransport | PlatformMirror | Audit> =>
  Effect.gen(function*() {
    const base = yield* DelegationStore
    const store = options.observe === undefined ? base : options.observe(base)
    const mirror = yield* PlatformMirror
    const warnings = yield* Warnings.make()
    const outbox = yield* Outbox.make({
      mirror,
      warnings,
      timeout: settings.mirrorTimeout,
      atClose: options.atClose,
      setPending: (id, pending) => setPending(store, id, pending)
    })
    return {
      workspaceId: settings.workspaceId,
      store,
      discovery: yield* Discovery,
      transport: yield* A2ATransport,
      mirror,
      outbox,
      warnings,
      audit: yield* Audit,
      retrySchedule: retryPolicy(settings.retrySchedule, retryAfterCap(settings)),
      pollSchedule: settings.pollSchedule,
      timeout: settings.timeout,
      mirrorTimeout: settings.mirrorTimeout,
      abandonable: options.abandonable ?? ((effect) => effect),
      dispatch: settings.dispatch ?? "direct",
      queuedTimeout: settings.queuedTimeout ?? QUEUED_TIMEOUT,
      reconcileInterval: settings.reconcileInterval ?? RECONCILE_INTERVAL,
      replicaId: settings.replicaId ?? (yield* uuidV4),
      leaseMillis: Duration.toMillis(settings.lease ?? DEFAULT_LEASE),
      resume: settings.resume ?? "fail",
      streaming: settings.streaming !== "off",
      releasing: MutableRef.make(false),
      following: MutableHashMap.empty(),
      cancelling: MutableHashSet.empty(),
      finishing: MutableHashMap.empty()
    }
  })

/** Notes whether the delegation owes the platform a write; its `updatedAt` (the time of its last state) stays. */
const setPending = (store: DelegationStore["Type"], id: string, pending: boolean) =>
  // Owed writes outlive the delegation's lease (a final update is owed after it ended): no owner guard.
  Effect.asVoid(writeRetried(store.update(id, { platformPending: pending ? true : undefined }, {})))

/**
 * How long a lease lasts when `DELEGATION_LEASE` is not set.
 *
 * @internal
 */
export const DEFAULT_LEASE: Duration.Duration = Duration.seconds(30)

/** A store that cannot be reached is tried again, 100 ms doubling to 5 s, for as long as the work runs. */
const storeRetry = Schedule.exponential(Duration.millis(100)).pipe(
  Schedule.union(Schedule.spaced(Duration.seconds(5))),
  Schedule.tapInput((error: DelegationStoreError) =>
    Effect.logWarning("the delegation store is unavailable; the write is tried again", error))
)

/**
 * A read the delegation's own work needs, tried again while the store is unavailable.
 *
 * @internal
 */
export const readRetried = <A>(read: Effect.Effect<A, DelegationStoreError>): Effect.Effect<A> => writeRetried(read)

/**
 * `write`, tried again while the store is unavailable; a corrupt row is a defect, and a lost lease
 * stops the fiber that wrote (the new owner carries the delegation on).
 *
 * @internal
 */
export const writeRetried = <A>(write: Effect.Effect<A, DelegationStoreError>): Effect.Effect<A> =>
  // `catchAllCause` is one Effect step when the write succeeds (`catchAll` two), on every write of
  // every delegation; the schedule is only built once a write has failed: most never do.
  Effect.catchAllCause(write, (cause) =>
    Either.match(Cause.failureOrCause(cause), {
      onLeft: (error) =>
        error.reason === "Unavailable"
          ? Effect.catchAll(
            Effect.retry(write, { schedule: storeRetry, while: (error) => error.reason === "Unavailable" }),
            notWritten
          )
          : notWritten(error),
      onRight: Effect.failCause
    }))

const notWritten = (error: DelegationStoreError): Effect.Effect<never> =>
  error.reason === "LeaseLost"
    ? Effect.zipRight(Effect.logInfo("another replica took this delegation over; this one stops", error), Effect.interrupt)
    : Effect.die(error)

/**
 * `Retry-After` is honoured up to `retryAfterMax` (60 s by default) and never past
 * `DELEGATION_TIMEOUT`, the bound of the delegation's own requests and of following its task.
 *
 * @internal
 */
export const retryAfterCap = (settings: Pick<Settings, "timeout" | "retryAfterMax">): Duration.Duration =>
  Duration.min(settings.retryAfterMax ?? DEFAULT_RETRY_AFTER_MAX, settings.timeout)

/**
 * One delegation to run.
 *
 * @internal
 */
export interface DelegationInput {
  readonly id: DelegationId
  /** The peer workspace. */
  readonly target: string
  /** The full task text (the store keeps only a preview). */
  readonly task: string
}

export type { DelegationChange }

/**
 * Statuses in which a delegation's own work may still change it.
 *
 * @internal
 */
export const ACTIVE: ReadonlyArray<DelegationStatus> = ["pending", "in_progress"]

/**
 * Statuses of a delegation waiting on the platform (`queued`, or in flight in `platform` dispatch).
 *
 * @internal
 */
export const WAITING: ReadonlyArray<DelegationStatus> = ["in_progress", "queued"]

export { UNFINISHED }

/**
 * Applies `change` to the stored delegation while its status is one of `status` (by default: while
 * its own work may change it, so nothing is written after a `cancel`) and this replica owns it, and
 * sets `updatedAt` from the `Clock`. Returns the new state, or `None` when nothing was changed. An
 * unavailable store is tried again; a lost lease interrupts the caller.
 *
 * @internal
 */
export const updateDelegation = (
  engine: Engine,
  id: string,
  change: DelegationChange,
  status: ReadonlyArray<DelegationStatus> = ACTIVE
): Effect.Effect<Option.Option<StoredDelegation>> =>
  // The clock read in place (not `DateTime.now`): a few Effect steps fewer on every write.
  Effect.clockWith((clock) => {
    const updatedAt = DateTime.unsafeMake(clock.unsafeCurrentTimeMillis())
    const written = engine.store.update(id, { ...change, updatedAt }, { status, owner: engine.replicaId })
    return writeRetried(written)
  })

/**
 * Writes a `delegation` audit event; a failing sink is logged, never an outcome.
 *
 * @internal
 */
export const auditDelegation = (
  engine: Engine,
  delegation: { readonly id: string; readonly target: string },
  outcome: AuditEvent["outcome"],
  traceId: string,
  extra: Readonly<Record<string, unknown>>
): Effect.Effect<void> =>
  engine.audit.log({
    eventType: "delegation",
    action: "delegate",
    resource: delegation.target,
    outcome,
    traceId,
    delegationId: delegation.id,
    extra
  }).pipe(bestEffort("audit", { annotations: logAnnotations(delegation), warnings: engine.warnings }))

/**
 * How a best-effort platform call about one delegation is run: bounded by `mirrorTimeout`,
 * a failure logged with the delegation's ids.
 *
 * @internal
 */
export const mirrorOptions = (engine: Engine, delegation: { readonly id: string; readonly target: string }) => ({
  timeout: engine.mirrorTimeout,
  annotations: logAnnotations(delegation),
  warnings: engine.warnings
})

/**
 * Delivers a write of the delegation's platform row (see ./mirrorOutbox.ts), each attempt
 * bounded by `mirrorTimeout` when the mirror does not bound its own calls.
 *
 * @internal
 */
export const deliverWrite = (
  engine: Engine,
  delegation: { readonly id: string; readonly target: string },
  write: Outbox.Write
): Effect.Effect<void> => engine.outbox.deliver(delegation.id, write, logAnnotations(delegation))

const logAnnotations = (delegation: { readonly id: string; readonly target: string }) => ({
  delegation_id: delegation.id,
  target_workspace_id: delegation.target
})

/** Characters of the task kept in the store and in audit previews. */
const TASK_PREVIEW = 200

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/**
 * The first 200 characters of a task, as a string of its own.
 *
 * @internal
 */
export const taskPreview = (task: string): string =>
  // A cut string may keep a reference to the whole (up to 1 MiB) task for as long as the store keeps it.
  task.length <= TASK_PREVIEW ? task : decoder.decode(encoder.encode(truncate(task, TASK_PREVIEW)))

/**
 * True while the delegation's own work may still change it.
 *
 * @internal
 */
export const isUnfinished = (delegation: Delegation): boolean => ACTIVE.includes(delegation.status)

/**
 * Runs `effect`, which records the outcome of delegation `id` outside its fiber, so that whoever
 * awaits `id` returns only once `effect` (the write and what follows it) is over.
 *
 * @internal
 */
export const recordingOutside = <A, E, R>(engine: Engine, id: string, effect: Effect.Effect<A, E, R>) =>
  Effect.acquireUseRelease(
    Effect.tap(Deferred.make<void>(), (done) => Effect.sync(() => MutableHashMap.set(engine.finishing, id, done))),
    () => effect,
    (done) => Effect.zipRight(Effect.sync(() => MutableHashMap.remove(engine.finishing, id)), Deferred.succeed(done, undefined))
  )
