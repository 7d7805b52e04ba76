/**
 * Mirrors delegations to the control-plane platform (best-effort by contract:
 * the delegation program never lets a mirror failure change an outcome), and, in
 * `platform` dispatch, hands delegations to it (`delegate`, whose failure is the outcome).
 *
 * @since 0.1.0
 */
import { Context, Schema } from "effect"
import type { Effect } from "effect"

/**
 * A platform call failed.
 *
 * @since 0.1.0
 * @category errors
 */
export class PlatformError extends Schema.TaggedError<PlatformError>("effect-a2a-delegation/PlatformError")(
  "PlatformError",
  {
    operation: Schema.Literal("record", "update", "notify", "list", "delegate"),
    reason: Schema.Literal("Transport", "Timeout", "Status", "Decode", "InvalidUrl", "TooLarge"),
    status: Schema.optional(Schema.Int),
    detail: Schema.String,
    /** What failed underneath, e.g. the `HttpClientError` of a `Transport` failure. */
    cause: Schema.optional(Schema.Defect)
  }
) {
  override get message(): string {
    const status = this.status === undefined ? "" : ` HTTP ${this.status}`
    return `Platform ${this.operation} failed (${this.reason}${status}): ${this.detail}`
  }
}

/**
 * A row of `GET /workspaces/{self}/delegations` (newest first on the platform).
 *
 * @since 0.1.0
 * @category schemas
 */
export const PlatformDelegationRow = Schema.Struct({
  delegation_id: Schema.optional(Schema.String),
  type: Schema.optional(Schema.String),
  status: Schema.optionalWith(Schema.String, { default: () => "" }),
  response_preview: Schema.optional(Schema.String),
  error: Schema.optional(Schema.String),
  target_id: Schema.optional(Schema.String),
  created_at: Schema.optional(Schema.String)
})

/**
 * @since 0.1.0
 * @category schemas
 */
export type PlatformDelegationRow = typeof PlatformDelegationRow.Type

/**
 * `POST /workspaces/{self}/delegations/record`.
 *
 * @since 0.1.0
 * @category models
 */
export interface RecordDelegation {
  readonly delegationId: string
  readonly targetId: string
  /** The full task text. */
  readonly task: string
}

/**
 * `POST /workspaces/{self}/delegations/{id}/update`; the platform accepts only these two statuses.
 *
 * @since 0.1.0
 * @category models
 */
export interface UpdateDelegation {
  readonly delegationId: string
  readonly status: "completed" | "failed"
  readonly error: string
  /** Cut to 500 characters on the wire. */
  readonly responsePreview: string
}

/**
 * `POST /workspaces/{self}/notify`: a chat message to the workspace's user.
 *
 * @since 0.1.0
 * @category models
 */
export interface NotifyDelegation {
  readonly message: string
  readonly delegationId: string
  readonly targetId: string
  readonly status: "completed" | "failed"
}

/**
 * `POST /workspaces/{self}/delegate`: the platform dispatches the task itself.
 *
 * @since 0.3.0
 * @category models
 */
export interface PlatformDelegate {
  readonly targetId: string
  /** The full task text. */
  readonly task: string
  /** The platform answers a key it has seen (on a delegation that has not failed) without dispatching again. */
  readonly idempotencyKey: string
}

/**
 * The platform's answer to `delegate`: 202 (`delegated`) or, for a key it has seen, 200 with
 * `idempotentHit` and the delegation's current status.
 *
 * @since 0.3.0
 * @category models
 */
export interface PlatformDelegated {
  readonly delegationId: string
  readonly status: string
  readonly idempotentHit: boolean
}

/**
 * The platform side of a delegation.
 *
 * @since 0.1.0
 * @category tags
 */
export class PlatformMirror extends Context.Tag("effect-a2a-delegation/PlatformMirror")<PlatformMirror, {
  readonly record: (request: RecordDelegation) => Effect.Effect<void, PlatformError>
  readonly update: (request: UpdateDelegation) => Effect.Effect<void, PlatformError>
  readonly notify: (request: NotifyDelegation) => Effect.Effect<void, PlatformError>
  /** This workspace's delegation rows, newest first (the platform returns at most its 50 newest). */
  readonly list: Effect.Effect<ReadonlyArray<PlatformDelegationRow>, PlatformError>
  /** Hands a delegation to the platform (`platform` dispatch). */
  readonly delegate: (request: PlatformDelegate) => Effect.Effect<PlatformDelegated, PlatformError>
}>() {}

/**
 * Keeps at most `max` characters (code points), never splitting a surrogate pair.
 *
 * @since 0.1.0
 * @category utils
 */
export const truncate = (text: string, max: number): string => {
  if (text.length <= max) return text
  let out = ""
  let count = 0
  for (const char of text) {
    if (count === max) break
    out += char
    count++
  }
  return out
}
