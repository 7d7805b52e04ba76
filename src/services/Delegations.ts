/**
 * The public face of the library: start a delegation, read its state.
 *
 * @since 0.1.0
 */
import { Context, Schema } from "effect"
import type { Effect } from "effect"
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
 *
 * @since 0.1.0
 * @category models
 */
export const DelegationStatus = Schema.Literal("pending", "in_progress", "queued", "completed", "failed")

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
 * The delegation fiber stopped abnormally: the layer was closed (`interrupted`)
 * or a service died (`defect`).
 *
 * @since 0.1.0
 * @category errors
 */
export class DelegationAborted extends Schema.TaggedError<DelegationAborted>(
  "effect-a2a-delegation/DelegationAborted"
)("DelegationAborted", {
  reason: Schema.Literal("interrupted", "defect"),
  detail: Schema.String
}) {
  override get message(): string {
    return this.reason === "interrupted"
      ? `interrupted: ${this.detail}`
      : `Internal error: ${this.detail}`
  }
}

/**
 * The delegation waited on the platform and its outcome never came: still `queued` (or, in
 * `platform` dispatch, still in flight) when `DELEGATION_QUEUED_TIMEOUT` ran out (`queued-timeout`),
 * or gone from the platform's delegation list, which shows only its 50 newest rows, so that its
 * outcome can no longer be read (`out-of-window`).
 *
 * @since 0.3.0
 * @category errors
 */
export class DelegationUnresolved extends Schema.TaggedError<DelegationUnresolved>(
  "effect-a2a-delegation/DelegationUnresolved"
)("DelegationUnresolved", {
  reason: Schema.Literal("queued-timeout", "out-of-window"),
  /** `DELEGATION_QUEUED_TIMEOUT` in seconds (`queued-timeout`). */
  seconds: Schema.optional(Schema.Number),
  /** The status the delegation was waiting in. */
  lastStatus: Schema.String
}) {
  override get message(): string {
    return this.reason === "queued-timeout"
      ? `The queued reply never arrived: still ${this.lastStatus} on the platform after ${
        this.seconds ?? 0
      }s (DELEGATION_QUEUED_TIMEOUT)`
      : `The queued reply can no longer arrive: the platform's delegation list (its 50 newest rows) no longer shows this ${this.lastStatus} delegation`
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
  createdAt: Schema.DateTimeUtc,
  updatedAt: Schema.DateTimeUtc
}) {
  /** True once the delegation can no longer change by itself (completed or failed). */
  get isFinished(): boolean {
    return this.status === "completed" || this.status === "failed"
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
  /** `request` when what was given is not an object with the two fields. */
  field: Schema.Literal("workspaceId", "task", "request"),
  rule: Schema.Literal("required", "max_length", "pattern", "self_delegation", "max_bytes"),
  detail: Schema.String
}) {
  override get message(): string {
    return `Invalid ${this.field} (${this.rule}): ${this.detail}`
  }
}

/**
 * No delegation with this id is stored (never created, or evicted from history).
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
 * The delegation runtime.
 *
 * @since 0.1.0
 * @category tags
 */
export class Delegations extends Context.Tag("effect-a2a-delegation/Delegations")<Delegations, {
  /**
   * Checks RBAC and input, stores the delegation and starts it in the background; no network I/O.
   * Input that is not a `DelegateRequest` (`null`, a string) fails with `InvalidDelegation`.
   */
  readonly delegate: (
    request: DelegateRequest
  ) => Effect.Effect<DelegationId, AccessDenied | InvalidDelegation>
  /** The stored delegation; one waiting on the platform is refreshed from the platform first. */
  readonly status: (id: string) => Effect.Effect<Delegation, DelegationNotFound>
  /** Every stored delegation, oldest first; those waiting on the platform are refreshed with one platform call. */
  readonly list: Effect.Effect<ReadonlyArray<Delegation>>
  /**
   * Waits for the final outcome (`completed` or `failed`) and returns it. A delegation waiting on the
   * platform (`queued`, or in flight in `platform` dispatch) ends when the layer's reconciler reads its
   * outcome from the platform, or fails at `DELEGATION_QUEUED_TIMEOUT`.
   */
  readonly await: (id: string) => Effect.Effect<Delegation, DelegationNotFound>
  /**
   * Waits until the delegation's background work is over - `completed`, `failed`, `queued` on the
   * platform, or (in `platform` dispatch) accepted by the platform - and returns it, without asking the
   * platform about it.
   */
  readonly awaitSettled: (id: string) => Effect.Effect<Delegation, DelegationNotFound>
  /** Delegations whose own work is not over: running, or waiting for a place under `DELEGATION_CONCURRENCY`. */
  readonly running: Effect.Effect<number>
}>() {}

const suffix = (detail: string): string => (detail === "" ? "" : `: ${detail}`)
