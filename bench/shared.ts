/**
 * What the benchmark's processes share.
 */

export interface RoundResult {
  readonly side: string
  readonly n: number
  readonly perSecond: number
  readonly p50: number
  readonly p99: number
  /** Peak resident set of this process, in bytes. */
  readonly peakRss: number
  readonly failed: number
  /** CPU time of the round's process (every thread, GC included) per measured delegation, in µs. */
  readonly cpuMicros: number
  /** Library sides: delegations still running once all were awaited (the FiberMap's size). */
  readonly runningAfter?: number
  /** Library sides: active handles before the layer was built and after it was closed. */
  readonly handlesBefore?: number
  readonly handlesAfter?: number
}

export const SELF = "ws-bench"
export const PEER = "ws-peer"
export const TOKEN = "bench-token"
export const POOL = 256

/**
 * The five requests of one delegation as the floor and the effect-http side make them (the bodies the
 * library sends): record, discover, send, update, notify.
 */
export const delegationRequests = (id: string, task: string) => ({
  record: {
    path: `/workspaces/${SELF}/delegations/record`,
    body: { target_id: PEER, task, delegation_id: id }
  },
  discover: { path: `/registry/discover/${PEER}` },
  send: {
    jsonrpc: "2.0",
    id: `${id}-1`,
    method: "message/send",
    params: {
      message: { kind: "message", role: "user", messageId: id, parts: [{ kind: "text", text: task }] },
      metadata: { parent_task_id: id, source_workspace_id: SELF, traceparent: null }
    }
  },
  update: (text: string) => ({
    path: `/workspaces/${SELF}/delegations/${id}/update`,
    body: { status: "completed", error: "", response_preview: text }
  }),
  notify: {
    path: `/workspaces/${SELF}/notify`,
    body: {
      message: `Delegation ${id} to ${PEER} completed.`,
      type: "delegation_complete",
      task_id: id,
      target_workspace_id: PEER,
      status: "completed"
    }
  }
})

/** The text of a v0.3 `message/send` reply. */
export const replyText = (body: unknown): string =>
  (body as { result: { parts: Array<{ text: string }> } }).result.parts[0]!.text
