/**
 * The handlers of `DelegationToolkit`, over the `Delegations` service.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import { truncate } from "../services/PlatformMirror.js"
import type { Delegation } from "../services/Delegations.js"
import { Delegations } from "../services/Delegations.js"
import { DelegationToolkit } from "../services/DelegationTools.js"

const statusOf = (d: Delegation) => ({
  task_id: d.id,
  workspace_id: d.workspaceId,
  status: d.status,
  task: d.task,
  ...(d.status === "completed" ? { result: d.result ?? "" } : {}),
  ...(d.status === "completed" && d.resultIsPreview === true ? { result_is_preview: true } : {}),
  ...(d.status === "failed" || d.status === "cancelled" ? { error: d.error ?? "" } : {}),
  ...((d.status === "pending" || d.status === "in_progress") && d.progress !== undefined ? { progress: d.progress } : {})
})

const listEntryOf = (d: Delegation) => ({
  task_id: d.id,
  workspace_id: d.workspaceId,
  status: d.status,
  task: d.task,
  ...(d.status === "completed" ? { result_preview: truncate(d.result ?? "", 200) } : {}),
  ...(d.status === "failed" || d.status === "cancelled" ? { error: d.error ?? "" } : {})
})

/**
 * Provides the handlers; requires `Delegations`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = DelegationToolkit.toLayer(Effect.gen(function*() {
  const delegations = yield* Delegations
  return DelegationToolkit.of({
    delegate_to_workspace: ({ idempotency_key, task, workspace_id }) =>
      delegations.delegate({
        workspaceId: workspace_id,
        task,
        // An empty key is no key: models fill optional strings with "".
        ...(idempotency_key === undefined || idempotency_key === "" ? {} : { idempotencyKey: idempotency_key })
      }).pipe(
        Effect.map((id) => ({
          success: true as const,
          task_id: id,
          status: "delegated" as const,
          message: `Task delegated to ${workspace_id}. Use check_delegation_status('${id}') to get the result when ready.`
        })),
        Effect.catchTags({
          AccessDenied: (error) => Effect.succeed({ success: false as const, error: error.message }),
          InvalidDelegation: (error) => Effect.succeed({ success: false as const, error: error.message }),
          Overloaded: (error) => Effect.succeed({ success: false as const, error: error.message }),
          DelegationStoreError: (error) => Effect.succeed({ success: false as const, error: error.message })
        })
      ),
    check_delegation_status: ({ task_id }) =>
      task_id === undefined || task_id === ""
        ? delegations.list.pipe(
          Effect.map((all) => ({ delegations: all.map(listEntryOf), count: all.length })),
          Effect.catchTag("DelegationStoreError", (error) => Effect.succeed({ error: error.message }))
        )
        : delegations.status(task_id).pipe(
          Effect.map(statusOf),
          Effect.catchTags({
            DelegationNotFound: (error) => Effect.succeed({ error: error.message }),
            DelegationEvicted: (error) => Effect.succeed({ error: error.message }),
            DelegationStoreError: (error) => Effect.succeed({ error: error.message })
          })
        ),
    cancel_delegation: ({ task_id }) =>
      delegations.cancel(task_id).pipe(
        Effect.map(statusOf),
        Effect.catchTags({
          DelegationNotFound: (error) => Effect.succeed({ error: error.message }),
          DelegationEvicted: (error) => Effect.succeed({ error: error.message }),
          DelegationAlreadyFinished: (error) => Effect.succeed({ error: error.message }),
          DelegationStoreError: (error) => Effect.succeed({ error: error.message })
        })
      )
  })
}))
