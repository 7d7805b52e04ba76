/**
 * Streaming against polling, for a peer task that runs 5 s: the peer requests each delegation costs
 * and when its outcome is known. Two `LocalPeer`s over real HTTP answer every delegation with a task
 * that completes after 5 s: one streams (its card says so; four progress notes and two artifact
 * chunks over the 5 s), the other does not (the library sends, then polls on its default schedule).
 * `N` delegations at once go through the live transport (`auto`: the card decides), over the
 * recommended pooled client.
 *
 * Run alone: `node dist-bench/streaming.js [N]`.
 */
import { Context, Duration, Effect, Layer, Logger, LogLevel } from "effect"
import {
  A2ATransportHttp,
  AuditMemory,
  Delegations,
  DelegationsLayer,
  DiscoveryTest,
  PlatformMirrorTest,
  RbacTest
} from "effect-a2a-delegation"
import { NodeHttpClientPooled } from "effect-a2a-delegation/node"
import { LocalPeer } from "effect-a2a-delegation/testing"

/** One side's figures. */
export interface StreamingSide {
  readonly side: "streaming" | "polling"
  readonly delegations: number
  /** Peer requests per delegation, in total and by JSON-RPC method. */
  readonly requestsPerDelegation: number
  readonly byMethod: Readonly<Record<string, number>>
  /** From the first `delegate` to the last outcome, and the mean delay between the peer's end and the outcome. */
  readonly wallMillis: number
  readonly meanLagMillis: number
}

const SELF = "bench-self"
const TASK_MILLIS = 5_000

const side = (name: StreamingSide["side"], n: number) =>
  Effect.scoped(Effect.gen(function*() {
    // Seven events (four notes, two chunks, the completion), the last at 5 s.
    const stream = {
      updates: ["reading", "drafting", "checking", "finishing"],
      chunks: ["The answer, ", "complete."],
      interval: Duration.millis(TASK_MILLIS / 7)
    }
    const peer = yield* LocalPeer.make({
      protocol: "1.0",
      behaviour: name === "streaming" ? { stream } : { result: "task", latency: `${TASK_MILLIS} millis` }
    })
    const delegations = yield* Layer.build(
      DelegationsLayer.layerCore({
        workspaceId: SELF,
        history: n,
        timeout: DelegationsLayer.DEFAULT_QUEUED_TIMEOUT,
        retrySchedule: DelegationsLayer.linearRetry(3, "1 second"),
        pollSchedule: DelegationsLayer.defaultPollSchedule
      }).pipe(
        Layer.provide(Layer.mergeAll(
          A2ATransportHttp.layer({ workspaceId: SELF, timeout: "60 seconds", protocol: "auto" }).pipe(
            Layer.provide(NodeHttpClientPooled.layer({ connections: 256 }))
          ),
          DiscoveryTest.layer({ peer: peer.url }),
          PlatformMirrorTest.layer(),
          AuditMemory.layer({ workspaceId: SELF }),
          RbacTest.layer({ allow: true })
        ))
      )
    ).pipe(Effect.map(Context.get(Delegations)))
    const started = Date.now()
    const ids = yield* Effect.forEach(Array.from({ length: n }), (_, i) =>
      delegations.delegate({ workspaceId: "peer", task: `task ${i}` }))
    const ends = yield* Effect.forEach(ids, (id) =>
      Effect.flatMap(delegations.await(id), (d) =>
        d.status === "completed" ? Effect.sync(() => Date.now()) : Effect.dieMessage(`${name}: ${d.status} ${d.error ?? ""}`)),
      { concurrency: "unbounded" })
    const wallMillis = Math.max(...ends) - started
    const requests = yield* peer.requests
    const byMethod: Record<string, number> = {}
    for (const r of requests) byMethod[r.method] = (byMethod[r.method] ?? 0) + 1 / n
    return {
      side: name,
      delegations: n,
      requestsPerDelegation: requests.length / n,
      byMethod,
      wallMillis,
      meanLagMillis: ends.reduce((sum, end) => sum + (end - started - TASK_MILLIS), 0) / n
    } satisfies StreamingSide
  }))

/** Both sides, one after the other. */
export const streamingVsPolling = (n: number): Promise<ReadonlyArray<StreamingSide>> =>
  Effect.runPromise(
    Effect.all([side("streaming", n), side("polling", n)]).pipe(Logger.withMinimumLogLevel(LogLevel.Error))
  )

const format = (s: StreamingSide) =>
  `${s.side.padEnd(9)}  ${s.requestsPerDelegation.toFixed(2).padStart(5)} peer requests/delegation (${
    Object.entries(s.byMethod).map(([m, c]) => `${m} ${c.toFixed(2)}`).join(", ")
  }); outcome known ${Math.round(s.meanLagMillis)} ms after the task's 5 s on average`

/** The report's lines. */
export const streamingReport = (sides: ReadonlyArray<StreamingSide>): ReadonlyArray<string> => sides.map(format)

if (import.meta.url === `file://${process.argv[1]}`) {
  const n = Number(process.argv[2] ?? 100)
  streamingVsPolling(n).then((sides) => {
    for (const line of streamingReport(sides)) console.log(line)
  })
}
