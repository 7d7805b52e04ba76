/**
 * The public face of the library: start a delegation, read its state.
 *
 * @since 0.1.0
 */
import { Context, Schema } from "effect"
import type { Duration, Effect, Stream } from "effect"
import { ProtocolVersion } from "./A2A.js"
import { A2ARequestError, A2AResponseError, A2ATransportError, JsonRpcError } from "./A2ATransport.js"
import { DiscoveryError } from "./Discovery.js"
import { PlatformError } from "./PlatformMirror.js"
import type { AccessDenied } from "./Rbac.js"

/**
 * Identifier of one delegation (a UUID v4). It is also the A2A `messageId`.
 *
 * @since 0.1.0
 * @category models
 */
export const DelegationId = Schema.String.pipe(Schema.brand("effect-a2a-delegation/DelegationId"))

/**
 * @since 0.1.0
 * @category models
 */
export type DelegationId = typeof DelegationId.Type

/**
 * Lifecycle of a delegation. `queued` means the platform's proxy accepted the request and will
 * deliver it when the peer is free: it is not a failure, but whether its reply can come back
 * depends on the dispatch mode (see the README); past `DELEGATION_QUEUED_TIMEOUT` it ends `failed`.
 * `completed`, `failed` and `cancelled` are final.
 *
 * @since 0.1.0
 * @category models
 */
export const DelegationStatus = Schema.Literal("pending", "in_progress", "queued", "completed", "failed", "cancelled")

/**
 * @since 0.1.0
 * @category models
 */
export type DelegationStatus = typeof DelegationStatus.Type

/**
 * The peer (or its task) ended the delegation without a usable answer.
 *
 * @since 0.1.0
 * @category errors
 */
export class PeerTaskFailed extends Schema.TaggedError<PeerTaskFailed>("effect-a2a-delegation/PeerTaskFailed")(
  "PeerTaskFailed",
  {
    reason: Schema.Literal(
      "failed",
      "rejected",
      "canceled",
      "input-required",
      "auth-required",
      "agent-error",
      "platform"
    ),
    taskId: Schema.optional(Schema.String),
    detail: Schema.String
  }
) {
  override get message(): string {
    switch (this.reason) {
      case "input-required":
      case "auth-required":
        return `Peer needs input (${this.reason}); delegations cannot answer follow-up questions${
          suffix(this.detail)
        }`
      case "agent-error":
        return `Peer replied with an agent error: ${this.detail}`
      case "platform":
        return `Platform reported the delegation as failed${suffix(this.detail)}`
      default:
        return `Peer task ${this.reason}${suffix(this.detail)}`
    }
  }
}

/**
 * The peer's task was still running when `DELEGATION_TIMEOUT` ran out.
 *
 * @since 0.1.0
 * @category errors
 */
export class DelegationTimeout extends Schema.TaggedError<DelegationTimeout>(
  "effect-a2a-delegation/DelegationTimeout"
)("DelegationTimeout", {
  seconds: Schema.Number,
  taskId: Schema.optional(Schema.String),
  lastState: Schema.optional(Schema.String)
}) {
  override get message(): string {
    const task = this.taskId === undefined ? "" : ` ${this.taskId}`
    return `Peer task${task} still ${this.lastState ?? "running"} after ${this.seconds}s (DELEGATION_TIMEOUT)`
  }
}

/**
 * The delegation fiber stopped abnormally: the layer was closed (`interrupted`),
 * a service died (`defect`), or the host cancelled it (`cancelled`, the `cause` of
 * a `cancelled` delegation).
 *
 * @since 0.1.0
 * @category errors
 */
export class DelegationAborted extends Schema.TaggedError<DelegationAborted>(
  "effect-a2a-delegation/DelegationAborted"
)("DelegationAborted", {
  reason: Schema.Literal("interrupted", "defect", "cancelled"),
  detail: Schema.String
}) {
  override get message(): string {
    return this.reason === "defect" ? `Internal error: ${this.detail}` : `${this.reason}: ${this.detail}`
  }
}

/**
 * The delegation's outcome cannot be known: it waited on the platform and was still `queued` (or,
 * in `platform` dispatch, still in flight) when `DELEGATION_QUEUED_TIMEOUT` ran out (`queued-timeout`),
 * or it is gone from the platform's delegation list, which shows only its 50 newest rows
 * (`out-of-window`); or a replica took it over from one that had sent the request with no answer
 * known, so that the peer may have it, and it was not sent twice (`maybe-delivered`; see
 * `DELEGATION_RESUME`).
 *
 * @since 0.3.0
 * @category errors
 */
export class DelegationUnresolved extends Schema.TaggedError<DelegationUnresolved>(
  "effect-a2a-delegation/DelegationUnresolved"
)("DelegationUnresolved", {
  reason: Schema.Literal("queued-timeout", "out-of-window", "maybe-delivered"),
  /** `DELEGATION_QUEUED_TIMEOUT` in seconds (`queued-timeout`). */
  seconds: Schema.optional(Schema.Number),
  /** The status the delegation was waiting in. */
  lastStatus: Schema.String
}) {
  override get message(): string {
    switch (this.reason) {
      case "queued-timeout":
        return `The queued reply never arrived: still ${this.lastStatus} on the platform after ${
          this.seconds ?? 0
        }s (DELEGATION_QUEUED_TIMEOUT)`
      case "out-of-window":
        return `The queued reply can no longer arrive: the platform's delegation list (its 50 newest rows) no longer shows this ${this.lastStatus} delegation`
      case "maybe-delivered":
        return "The replica running this delegation stopped after sending it, with no answer known: the peer may have it, " +
          "and it is not sent a second time (DELEGATION_RESUME=resend sends it again with the same messageId)"
    }
  }
}

/**
 * How a delegation was carried: straight to the peer's URL (`direct`), through the platform's
 * A2A proxy (`proxy`), or handed to the platform (`platform`, `POST /workspaces/{self}/delegate`).
 *
 * @since 0.3.0
 * @category models
 */
export const DispatchMode = Schema.Literal("direct", "proxy", "platform")

/**
 * @since 0.3.0
 * @category models
 */
export type DispatchMode = typeof DispatchMode.Type

/**
 * Why a delegation failed, kept typed next to its readable `error` text.
 *
 * @since 0.1.0
 * @category models
 */
export const DelegationFailure = Schema.Union(
  DiscoveryError,
  A2ATransportError,
  A2ARequestError,
  A2AResponseError,
  JsonRpcError,
  PeerTaskFailed,
  DelegationTimeout,
  DelegationAborted,
  DelegationUnresolved,
  PlatformError
)

/**
 * @since 0.1.0
 * @category models
 */
export type DelegationFailure = typeof DelegationFailure.Type

/**
 * One delegation as the store keeps it.
 *
 * @since 0.1.0
 * @category models
 */
export class Delegation extends Schema.Class<Delegation>("effect-a2a-delegation/Delegation")({
  id: DelegationId,
  /** The peer workspace the task was handed to. */
  workspaceId: Schema.String,
  /** The first 200 characters of the task. */
  task: Schema.String,
  status: DelegationStatus,
  /**
   * The peer's answer (completed only). When `resultIsPreview` is true it is the platform's copy:
   * at most 300 bytes, followed by `...` when the answer was longer.
   */
  result: Schema.optional(Schema.String),
  /** True when `result` was read from the platform's delegation list (a preview, not the whole answer). */
  resultIsPreview: Schema.optional(Schema.Boolean),
  /** A readable failure message (failed only). */
  error: Schema.optional(Schema.String),
  /** The typed failure behind `error`. */
  cause: Schema.optional(DelegationFailure),
  /**
   * Send attempts made so far (`SendMessage` / `message/send` POSTs). The resend of a version
   * fallback (in the other A2A version, after a -32009/-32601 answer) is part of its attempt.
   */
  attempts: Schema.Int,
  /** The A2A version spoken to the peer ("1.0" or "0.3"), once a request was sent. */
  protocolVersion: Schema.optional(ProtocolVersion),
  /** The peer's A2A task id, when it answered with a Task. */
  taskId: Schema.optional(Schema.String),
  /**
   * The text of the latest status message the peer streamed while its task runs ("step 3 of 5"), at
   * most 2,000 characters. Streaming peers only (see the README's Streaming section).
   */
  progress: Schema.optional(Schema.String),
  /** The artifact text a streaming peer has sent so far, while its task runs. */
  partialResult: Schema.optional(Schema.String),
  /** The proxy's `queue_id` (queued only). */
  queueId: Schema.optional(Schema.String),
  /** The proxy's `queue_depth` (queued only). */
  queueDepth: Schema.optional(Schema.Int),
  /** The proxy's `message` (queued only). */
  queueMessage: Schema.optional(Schema.String),
  /** How the delegation was carried (`DELEGATION_DISPATCH`); absent on delegations stored before 0.3. */
  dispatch: Schema.optional(DispatchMode),
  /** The platform's own `delegation_id` (`platform` dispatch), once the platform accepted it. */
  platformDelegationId: Schema.optional(Schema.String),
  /** The OpenTelemetry trace id of the delegation's `task_delegate` span. */
  traceId: Schema.optional(Schema.String),
  /**
   * True while the platform has not acknowledged a write its row of this delegation must show (the
   * record, the final update): the write failed for a transient reason and is sent again until it
   * lands. Absent once the platform is up to date.
   */
  platformPending: Schema.optional(Schema.Boolean),
  createdAt: Schema.DateTimeUtc,
  updatedAt: Schema.DateTimeUtc
}) {
  /** True once the delegation can no longer change (completed, failed or cancelled). */
  get isFinished(): boolean {
    return this.status === "completed" || this.status === "failed" || this.status === "cancelled"
  }

  /**
   * True while only the platform can resolve the delegation: `queued` (in any mode), or handed to
   * the platform and still in flight there (`platform` dispatch).
   */
  get isWaitingOnPlatform(): boolean {
    return this.status === "queued" ||
      (this.status === "in_progress" && this.dispatch === "platform" && this.platformDelegationId !== undefined)
  }
}

/**
 * A store could not do what was asked: it could not be reached or answered with an error
 * (`Unavailable`, worth retrying), the replica no longer owns the delegation it wrote
 * (`LeaseLost`), or a stored row could not be read back (`Corrupt`).
 *
 * @since 0.4.0
 * @category errors
 */
export class DelegationStoreError extends Schema.TaggedError<DelegationStoreError>(
  "effect-a2a-delegation/DelegationStoreError"
)("DelegationStoreError", {
  reason: Schema.Literal("Unavailable", "LeaseLost", "Corrupt"),
  /** The store operation (`create`, `update`, `claim`, ...). */
  operation: Schema.String,
  /** The delegation concerned, when there is one. */
  id: Schema.optional(Schema.String),
  cause: Schema.optional(Schema.Defect)
}) {
  override get message(): string {
    const about = this.id === undefined ? "" : ` of ${this.id}`
    switch (this.reason) {
      case "Unavailable":
        return `The delegation store is unavailable (${this.operation}${about})`
      case "LeaseLost":
        return `This replica no longer owns delegation ${this.id ?? ""}; another replica took it over (${this.operation})`
      case "Corrupt":
        return `A stored delegation could not be read (${this.operation}${about})`
    }
  }
}

/**
 * What `delegate` takes.
 *
 * @since 0.1.0
 * @category models
 */
export interface DelegateRequest {
  /** The peer workspace id. */
  readonly workspaceId: string
  /** The task, as plain text. */
  readonly task: string
  /**
   * Names the request: while a delegation with this key is live, or finished other than `failed`
   * or `cancelled`, `delegate` returns its id instead of starting another (at most 256 characters).
   */
  readonly idempotencyKey?: string | undefined
}

/**
 * Input that cannot become a delegation; nothing was stored.
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidDelegation extends Schema.TaggedError<InvalidDelegation>(
  "effect-a2a-delegation/InvalidDelegation"
)("InvalidDelegation", {
  /** `request` when what was given is not an object with the fields. */
  field: Schema.Literal("workspaceId", "task", "idempotencyKey", "request"),
  rule: Schema.Literal("required", "max_length", "pattern", "self_delegation", "max_bytes"),
  detail: Schema.String
}) {
  override get message(): string {
    return `Invalid ${this.field} (${this.rule}): ${this.detail}`
  }
}

/**
 * No delegation with this id is stored: never created, or evicted so long ago that the store no
 * longer remembers it (a recent eviction is `DelegationEvicted`).
 *
 * @since 0.1.0
 * @category errors
 */
export class DelegationNotFound extends Schema.TaggedError<DelegationNotFound>(
  "effect-a2a-delegation/DelegationNotFound"
)("DelegationNotFound", { id: Schema.String }) {
  override get message(): string {
    return `No delegation found with id ${this.id}`
  }
}

/**
 * The delegation was finished and later evicted from the store: its final state is gone.
 * `history`: it had been read, or `DELEGATION_RETENTION` had passed, and more than
 * `DELEGATION_HISTORY` finished delegations were kept; `cap`: unread, pushed out by
 * `DELEGATION_HISTORY_CAP`.
 *
 * @since 0.3.0
 * @category errors
 */
export class DelegationEvicted extends Schema.TaggedError<DelegationEvicted>(
  "effect-a2a-delegation/DelegationEvicted"
)("DelegationEvicted", {
  id: Schema.String,
  reason: Schema.Literal("history", "cap"),
  evictedAt: Schema.DateTimeUtc
}) {
  override get message(): string {
    const why = this.reason === "history"
      ? "after it was read or DELEGATION_RETENTION passed, beyond DELEGATION_HISTORY"
      : "unread, beyond DELEGATION_HISTORY_CAP"
    return `Delegation ${this.id} was evicted at ${this.evictedAt.toJSON()} (${why})`
  }
}

/**
 * `await` gave up after its `timeout`; the delegation itself keeps running.
 *
 * @since 0.3.0
 * @category errors
 */
export class AwaitTimeout extends Schema.TaggedError<AwaitTimeout>("effect-a2a-delegation/AwaitTimeout")(
  "AwaitTimeout",
  { id: Schema.String, millis: Schema.Number, lastStatus: DelegationStatus }
) {
  override get message(): string {
    return `Delegation ${this.id} still ${this.lastStatus} after waiting ${this.millis} ms; it keeps running`
  }
}

/**
 * `delegate` was refused at once: `DELEGATION_MAX_PENDING` delegations already wait for a
 * place. Nothing was stored.
 *
 * @since 0.3.0
 * @category errors
 */
export class Overloaded extends Schema.TaggedError<Overloaded>("effect-a2a-delegation/Overloaded")(
  "Overloaded",
  { pending: Schema.Int, maxPending: Schema.Int }
) {
  override get message(): string {
    return `Too many delegations waiting for a place (${this.pending} of DELEGATION_MAX_PENDING ${this.maxPending}); try again later`
  }
}

/**
 * `cancel` of a delegation that had already completed or failed.
 *
 * @since 0.3.0
 * @category errors
 */
export class DelegationAlreadyFinished extends Schema.TaggedError<DelegationAlreadyFinished>(
  "effect-a2a-delegation/DelegationAlreadyFinished"
)("DelegationAlreadyFinished", { id: Schema.String, status: Schema.Literal("completed", "failed") }) {
  override get message(): string {
    return `Delegation ${this.id} is already ${this.status}; there is nothing to cancel`
  }
}

/**
 * The errors of reading one delegation by id.
 *
 * @since 0.3.0
 * @category errors
 */
export type DelegationLookupError = DelegationNotFound | DelegationEvicted

/**
 * Options of `await`.
 *
 * @since 0.3.0
 * @category models
 */
export interface AwaitOptions {
  /** Give up after this long with `AwaitTimeout`; the delegation keeps running. Waits without bound when left out. */
  readonly timeout?: Duration.DurationInput | undefined
}

/**
 * The delegation runtime.
 *
 * @since 0.1.0
 * @category tags
 */
export class Delegations extends Context.Tag("effect-a2a-delegation/Delegations")<Delegations, {
  /**
   * Checks RBAC and input, stores the delegation and starts it in the background; no network I/O.
   * Input that is not a `DelegateRequest` (`null`, a string) fails with `InvalidDelegation`.
   * With an `idempotencyKey` already in use (see `DelegateRequest`), returns that delegation's id.
   */
  readonly delegate: (
    request: DelegateRequest
  ) => Effect.Effect<DelegationId, AccessDenied | InvalidDelegation | Overloaded | DelegationStoreError>
  /** The stored delegation; one waiting on the platform is refreshed from the platform first. */
  readonly status: (id: string) => Effect.Effect<Delegation, DelegationLookupError | DelegationStoreError>
  /**
   * This workspace's newest 1,000 stored delegations, oldest first (made by any replica sharing the
   * store); those waiting on the platform are refreshed with one platform call.
   */
  readonly list: Effect.Effect<ReadonlyArray<Delegation>, DelegationStoreError>
  /**
   * Waits for the final state (`completed`, `failed` or `cancelled`), woken by the change itself. A
   * delegation waiting on the platform (`queued`, or in flight in `platform` dispatch) ends when the
   * layer's reconciler reads its outcome from the platform, or fails at `DELEGATION_QUEUED_TIMEOUT`.
   */
  readonly await: (
    id: string,
    options?: AwaitOptions
  ) => Effect.Effect<Delegation, DelegationLookupError | AwaitTimeout | DelegationStoreError>
  /**
   * Waits until the delegation's background work is over - `completed`, `failed`, `cancelled`,
   * `queued` on the platform, or (in `platform` dispatch) accepted by the platform - and returns it,
   * without asking the platform about it.
   */
  readonly awaitSettled: (id: string) => Effect.Effect<Delegation, DelegationLookupError | DelegationStoreError>
  /**
   * Every state change of every delegation from the moment of subscribing, in order per delegation.
   * Each subscriber has a bounded buffer: one that falls more than 1,024 changes behind loses the
   * oldest ones, and never slows a delegation down.
   */
  readonly changes: Stream.Stream<Delegation>
  /** The current state of one delegation, then each change, ending after its final state. */
  readonly watch: (id: string) => Stream.Stream<Delegation, DelegationLookupError | DelegationStoreError>
  /**
   * Stops a delegation: interrupts its work (or takes it off the queue for a place), asks the peer
   * to cancel its task when there is one (best effort, bounded), and stores `cancelled` - unless the
   * peer answers that its task cannot be cancelled and a read shows it had completed or failed, which
   * is then stored. Cancelling a cancelled delegation returns it; a completed or failed one fails with
   * `DelegationAlreadyFinished`.
   */
  readonly cancel: (
    id: string
  ) => Effect.Effect<Delegation, DelegationLookupError | DelegationAlreadyFinished | DelegationStoreError>
  /** Delegations whose own work is not over: running, or waiting for a place. */
  readonly running: Effect.Effect<number>
}>() {}

const suffix = (detail: string): string => (detail === "" ? "" : `: ${detail}`)
