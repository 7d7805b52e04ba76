/**
 * The delegation tools for LLM agents, as an `@effect/ai` toolkit:
 * `delegate_to_workspace`, `check_delegation_status` and `cancel_delegation`, with the
 * original module's guidance in their descriptions and its JSON result shapes.
 *
 * @since 0.1.0
 */
import { Tool, Toolkit } from "@effect/ai"
import { Schema } from "effect"

/**
 * `{success: true, task_id, status: "delegated", message}`.
 *
 * @since 0.1.0
 * @category schemas
 */
export const Delegated = Schema.Struct({
  success: Schema.Literal(true),
  task_id: Schema.String,
  status: Schema.Literal("delegated"),
  message: Schema.String
})

/**
 * `{success: false, error}`: refused by RBAC, by input validation or because too many delegations
 * wait for a place; nothing was started.
 *
 * @since 0.1.0
 * @category schemas
 */
export const Refused = Schema.Struct({ success: Schema.Literal(false), error: Schema.String })

/**
 * `{task_id, workspace_id, status, task, result | error}` (`result_is_preview: true` when the result is the
 * platform's 300-byte preview).
 *
 * @since 0.1.0
 * @category schemas
 */
export const DelegationStatusResult = Schema.Struct({
  task_id: Schema.String,
  workspace_id: Schema.String,
  status: Schema.String,
  task: Schema.String,
  result: Schema.optional(Schema.String),
  /** True when `result` is the platform's preview (at most 300 bytes), not the whole answer. */
  result_is_preview: Schema.optional(Schema.Boolean),
  error: Schema.optional(Schema.String),
  /** While it runs, a streaming peer's latest progress note ("step 3 of 5"). */
  progress: Schema.optional(Schema.String)
})

/**
 * `{delegations: [{task_id, workspace_id, status, task, result_preview | error}], count}`.
 *
 * @since 0.1.0
 * @category schemas
 */
export const DelegationList = Schema.Struct({
  delegations: Schema.Array(Schema.Struct({
    task_id: Schema.String,
    workspace_id: Schema.String,
    status: Schema.String,
    task: Schema.String,
    result_preview: Schema.optional(Schema.String),
    error: Schema.optional(Schema.String)
  })),
  count: Schema.Int
})

/**
 * `{error}`: no delegation with that id (or no longer), or nothing left to cancel.
 *
 * @since 0.1.0
 * @category schemas
 */
export const UnknownDelegation = Schema.Struct({ error: Schema.String })

/**
 * Hands a task to a peer workspace and returns at once with its `task_id`.
 *
 * @since 0.1.0
 * @category tools
 */
export const DelegateToWorkspace = Tool.make("delegate_to_workspace", {
  description: [
    "Delegate a task to a peer workspace via the A2A protocol (non-blocking).",
    "Sends the task in the background and returns immediately with a task_id.",
    "Use check_delegation_status(task_id) to get the result, or continue working and check later;",
    "the peer works independently."
  ].join(" "),
  parameters: {
    workspace_id: Schema.String.annotations({ description: "The ID of the target workspace to delegate to." }),
    task: Schema.String.annotations({ description: "The task description to send to the peer." }),
    idempotency_key: Schema.optional(Schema.String).annotations({
      description: [
        "Optional. A key of your choosing for this task (at most 256 characters): calling delegate_to_workspace",
        "again with the same key returns the same task_id instead of starting a second delegation, unless that",
        "one failed or was cancelled. Use it when a call may be repeated."
      ].join(" ")
    })
  },
  success: Schema.Union(Delegated, Refused)
})

/**
 * Reads one delegation (refreshing a queued one from the platform), or lists all.
 *
 * @since 0.1.0
 * @category tools
 */
export const CheckDelegationStatus = Tool.make("check_delegation_status", {
  description: [
    "Check the status of a delegated task, or list all delegations when task_id is empty.",
    "Status semantics, IMPORTANT:",
    "\"pending\" / \"in_progress\": the peer is working (`progress`, when present, is its latest note). Wait and check again.",
    "\"queued\": the platform accepted the task but the peer is busy with a prior task; the platform dispatches it",
    "when the peer is free. The outcome WILL arrive: \"completed\" with the reply, or \"failed\" if the reply cannot",
    "come back in time. Do NOT retry the delegation. Do NOT do the work yourself. Tell the user the peer is busy,",
    "then continue with other work and check back later.",
    "\"completed\": the answer is in `result` (when `result_is_preview` is true it is the platform's preview of at",
    "most 300 bytes, not the whole answer).",
    "\"failed\": a real failure; `error` has the cause. Only fall back to doing the work yourself when the status",
    "is \"failed\", never when it is \"queued\".",
    "\"cancelled\": the delegation was stopped with cancel_delegation (or by the host); no reply will come."
  ].join(" "),
  parameters: {
    task_id: Schema.optional(Schema.String).annotations({
      description: "The task_id returned by delegate_to_workspace. Leave empty to list all delegations."
    })
  },
  success: Schema.Union(DelegationStatusResult, DelegationList, UnknownDelegation)
})

/**
 * Stops a delegation that is still pending, in progress or queued.
 *
 * @since 0.3.0
 * @category tools
 */
export const CancelDelegation = Tool.make("cancel_delegation", {
  description: [
    "Cancel a delegated task that is no longer needed: it stops at once, the peer is asked to stop its task,",
    "and its status becomes \"cancelled\". A task that has already completed or failed cannot be cancelled;",
    "cancelling a cancelled task again does nothing."
  ].join(" "),
  parameters: {
    task_id: Schema.String.annotations({ description: "The task_id returned by delegate_to_workspace." })
  },
  success: Schema.Union(DelegationStatusResult, UnknownDelegation)
})

/**
 * The three tools.
 *
 * @since 0.1.0
 * @category toolkits
 */
export const DelegationToolkit = Toolkit.make(DelegateToWorkspace, CheckDelegationStatus, CancelDelegation)
