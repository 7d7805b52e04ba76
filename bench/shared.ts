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
  /** `library-postgres` on a server of this machine: the server's CPU time (every process of it) per measured delegation, in µs. */
  readonly serverCpuMicros?: number
  /** Library sides: the most file descriptors the process had open (sampled every second). */
  readonly peakFds?: number
  /** Library sides: delegations still running once all were awaited (the FiberMap's size). */
  readonly runningAfter?: number
  /** Library sides: active handles before the layer was built and after it was closed. */
  readonly handlesBefore?: number
  readonly handlesAfter?: number
  /** Sides that make HTTP requests: what the bench server received, counted there (see `RequestFigures`). */
  readonly requests?: RequestFigures
}

/**
 * The routes the bench server counts. The platform's: record, discover, update, notify, list, delegate
 * (platform dispatch) and proxy (`/workspaces/{id}/a2a`); the peer's: `a2a` (message/send and the other
 * A2A POSTs) and `card` (agent-card reads). `other` is anything else, so a stray request still shows.
 */
export const PLATFORM_ROUTES = ["record", "discover", "update", "notify", "list", "delegate", "proxy"] as const
export const PEER_ROUTES = ["a2a", "card"] as const
export const ROUTES = [...PLATFORM_ROUTES, ...PEER_ROUTES, "other"] as const
export type Route = (typeof ROUTES)[number]
export type RouteCounts = Record<Route, number>

/** The path of the bench server's counts (`GET`, a `RouteCounts`); reading them is not counted. */
export const COUNTS_PATH = "/__counts"

export const noRequests = (): RouteCounts =>
  Object.fromEntries(ROUTES.map((route) => [route, 0])) as RouteCounts

/** `after - before`, route by route, each divided by `per` (1 for totals). */
export const countsBetween = (before: RouteCounts, after: RouteCounts, per: number): RouteCounts =>
  Object.fromEntries(ROUTES.map((route) => [route, (after[route] - before[route]) / per])) as RouteCounts

export const sumOf = (counts: RouteCounts, routes: ReadonlyArray<Route>) =>
  routes.reduce((sum, route) => sum + counts[route], 0)

/**
 * The requests of a round, from the server's counts read before the round, after its warm-up and after
 * its measured part (each read once the side had no request left in flight).
 */
export interface RequestFigures {
  /** Platform requests (every platform route) per measured delegation. */
  readonly platform: number
  /** Peer requests (A2A POSTs and agent-card reads) per measured delegation. */
  readonly peer: number
  /** Per measured delegation, by route. */
  readonly byRoute: RouteCounts
  /** Totals of the warm-up, the layer's build included (where a once-per-layer request such as the card read lands). */
  readonly warmUp: RouteCounts
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
