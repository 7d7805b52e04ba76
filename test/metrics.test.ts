/**
 * Delegation metrics (`DelegationMetrics`): what the program counts and measures,
 * read with `Metric.value` over the in-memory layers and the TestClock, then the
 * same metrics exported through OpenTelemetry's metrics SDK.
 *
 * Effect metrics live in a global registry (one per test file), so every
 * assertion is a delta between a reading before and one after.
 */
import { NodeSdk } from "@effect/opentelemetry"
import { describe, expect, it } from "@effect/vitest"
import {
  AggregationTemporality,
  DataPointType,
  InMemoryMetricExporter,
  PeriodicExportingMetricReader
} from "@opentelemetry/sdk-metrics"
import type { DataPoint, Histogram, MetricData } from "@opentelemetry/sdk-metrics"
import { A2ATransportTest, DelegationMetrics, Delegations, PlatformMirrorTest } from "effect-a2a-delegation"
import type { PlatformDelegationRow } from "effect-a2a-delegation"
import { Effect, Fiber, Layer, Metric, TestClock } from "effect"
import { PEER, SELF, testLayer } from "./fixtures/layers.js"

// --- helpers -------------------------------------------------------------------------------------

interface Reading {
  readonly started: number
  readonly completed: number
  readonly failed: number
  readonly queued: number
  readonly cancelled: number
  readonly attempts: number
  readonly retries: number
  readonly outcomeCount: number
  readonly outcomeSum: number
  readonly queuedCount: number
  readonly queuedSum: number
}

/** Every delegation metric, now. */
const read: Effect.Effect<Reading> = Effect.gen(function*() {
  const timeToOutcome = yield* Metric.value(DelegationMetrics.timeToOutcome)
  const timeQueued = yield* Metric.value(DelegationMetrics.timeQueued)
  return {
    started: (yield* Metric.value(DelegationMetrics.started)).count,
    completed: (yield* Metric.value(DelegationMetrics.finishedAs.completed)).count,
    failed: (yield* Metric.value(DelegationMetrics.finishedAs.failed)).count,
    queued: (yield* Metric.value(DelegationMetrics.finishedAs.queued)).count,
    cancelled: (yield* Metric.value(DelegationMetrics.finishedAs.cancelled)).count,
    attempts: (yield* Metric.value(DelegationMetrics.attempts)).count,
    retries: (yield* Metric.value(DelegationMetrics.retries)).count,
    outcomeCount: timeToOutcome.count,
    outcomeSum: timeToOutcome.sum,
    queuedCount: timeQueued.count,
    queuedSum: timeQueued.sum
  }
})

const zero: Reading = {
  started: 0,
  completed: 0,
  failed: 0,
  queued: 0,
  cancelled: 0,
  attempts: 0,
  retries: 0,
  outcomeCount: 0,
  outcomeSum: 0,
  queuedCount: 0,
  queuedSum: 0
}

/** Runs `effect` and returns its value with the change of every metric it caused. */
const measure = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const before = yield* read
    const value = yield* effect
    const after = yield* read
    const delta = Object.fromEntries(
      Object.keys(zero).map((key) => [key, after[key as keyof Reading] - before[key as keyof Reading]])
    ) as unknown as Reading
    return { value, delta }
  })

/** The expected deltas: zero everywhere except `changes`. */
const deltas = (changes: Partial<Reading>): Reading => ({ ...zero, ...changes })

/** Starts a delegation and waits for it while moving the TestClock far enough for every retry. */
const delegateAndAwaitWithTime = (task = "do stuff") =>
  Effect.gen(function*() {
    const d = yield* Delegations
    const id = yield* d.delegate({ workspaceId: PEER, task })
    const fiber = yield* Effect.fork(d.awaitSettled(id))
    yield* TestClock.adjust("10 minutes")
    return yield* Fiber.join(fiber)
  })

const row = (delegationId: string, status: string, extra: Partial<PlatformDelegationRow> = {}): PlatformDelegationRow => ({
  delegation_id: delegationId,
  type: "delegation",
  status,
  ...extra
})

const platform = PlatformMirrorTest.PlatformMirrorTest

// --- what the program records ---------------------------------------------------------------------

describe("delegation metrics", () => {
  it.effect("a cancelled delegation: started, finished{cancelled} with its time to outcome, nothing else", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      const { delta } = yield* measure(Effect.gen(function*() {
        const id = yield* d.delegate({ workspaceId: PEER, task: "never answered" })
        yield* TestClock.adjust("3 seconds")
        return yield* d.cancel(id)
      }))
      expect(delta).toEqual(deltas({ started: 1, cancelled: 1, attempts: 1, outcomeCount: 1, outcomeSum: 3 }))
    }).pipe(Effect.provide(testLayer({ send: [Effect.never] }))))

  it.effect("a completed delegation: started, finished{completed}, one attempt, no retry, time to outcome", () =>
    Effect.gen(function*() {
      const { delta, value: done } = yield* measure(
        Effect.flatMap(Delegations, (d) => Effect.flatMap(d.delegate({ workspaceId: PEER, task: "hi" }), d.awaitSettled))
      )
      expect(done.status).toBe("completed")
      // the TestClock did not move: the outcome took 0 s
      expect(delta).toEqual(deltas({ started: 1, completed: 1, attempts: 1, outcomeCount: 1, outcomeSum: 0 }))
    }).pipe(Effect.provide(testLayer({ send: [A2ATransportTest.message("done")] }))))

  it.effect("a refused peer: 3 attempts, 2 retries, finished{failed}, 15 s to the outcome (5 s + 10 s)", () =>
    Effect.gen(function*() {
      const { delta, value: done } = yield* measure(delegateAndAwaitWithTime())
      expect(done.status).toBe("failed")
      expect(done.attempts).toBe(3)
      expect(delta).toEqual(deltas({ started: 1, failed: 1, attempts: 3, retries: 2, outcomeCount: 1, outcomeSum: 15 }))
    }).pipe(Effect.provide(testLayer({ send: [A2ATransportTest.refused()] }))))

  it.effect("one transport failure then an answer: 2 attempts, 1 retry, completed after 5 s", () =>
    Effect.gen(function*() {
      const { delta, value: done } = yield* measure(delegateAndAwaitWithTime())
      expect(done.status).toBe("completed")
      expect(delta).toEqual(deltas({ started: 1, completed: 1, attempts: 2, retries: 1, outcomeCount: 1, outcomeSum: 5 }))
    }).pipe(Effect.provide(testLayer({ send: [A2ATransportTest.refused(), A2ATransportTest.message("ok")] }))))

  it.effect("a JSON-RPC error: one attempt, no retry, failed at once", () =>
    Effect.gen(function*() {
      const { delta, value: done } = yield* measure(delegateAndAwaitWithTime())
      expect(done.status).toBe("failed")
      expect(delta).toEqual(deltas({ started: 1, failed: 1, attempts: 1, outcomeCount: 1, outcomeSum: 0 }))
    }).pipe(Effect.provide(testLayer({ send: [A2ATransportTest.rpcError(-32603, "internal error")] }))))

  it.effect("a discovery failure: started and failed, but no attempt", () =>
    Effect.gen(function*() {
      const { delta, value: done } = yield* measure(
        Effect.flatMap(Delegations, (d) => Effect.flatMap(d.delegate({ workspaceId: "stranger", task: "x" }), d.awaitSettled))
      )
      expect(done.status).toBe("failed")
      expect(done.error).toContain("Discovery failed")
      expect(delta).toEqual(deltas({ started: 1, failed: 1, outcomeCount: 1 }))
    }).pipe(Effect.provide(testLayer({ send: [A2ATransportTest.message("done")] }))))

  it.effect("time to outcome follows the TestClock: a task polled for 3.5 s completes in 3.5 s", () =>
    Effect.gen(function*() {
      const { delta, value: done } = yield* measure(delegateAndAwaitWithTime())
      expect(done.status).toBe("completed")
      // polls at 0.5 s, 1.5 s, 3.5 s
      expect(delta).toEqual(deltas({ started: 1, completed: 1, attempts: 1, outcomeCount: 1, outcomeSum: 3.5 }))
    }).pipe(Effect.provide(testLayer({
      send: [A2ATransportTest.task("working", { id: "t-1" })],
      getTask: [
        A2ATransportTest.task("working", { id: "t-1" }),
        A2ATransportTest.task("working", { id: "t-1" }),
        A2ATransportTest.task("completed", { id: "t-1", text: "done" })
      ]
    }))))

  it.effect("refused by RBAC or by validation: nothing is counted", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      const { delta } = yield* measure(
        Effect.gen(function*() {
          yield* Effect.flip(d.delegate({ workspaceId: PEER, task: "x" }))
          yield* TestClock.adjust("1 minute")
        })
      )
      expect(delta).toEqual(zero)
    }).pipe(Effect.provide(testLayer({ send: [A2ATransportTest.message("done")], allow: false }))))

  it.effect("an invalid request is not counted", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      const { delta } = yield* measure(
        Effect.gen(function*() {
          yield* Effect.flip(d.delegate({ workspaceId: SELF, task: "x" }))
          yield* Effect.flip(d.delegate({ workspaceId: PEER, task: "" }))
          yield* TestClock.adjust("1 minute")
        })
      )
      expect(delta).toEqual(zero)
    }).pipe(Effect.provide(testLayer({ send: [A2ATransportTest.message("done")] }))))

  it.effect("several delegations add up", () =>
    Effect.gen(function*() {
      const { delta } = yield* measure(
        Effect.gen(function*() {
          const d = yield* Delegations
          const ids = yield* Effect.forEach(["a", "b", "c", "d"], (task) => d.delegate({ workspaceId: PEER, task }))
          yield* Effect.forEach(ids, (id) => d.awaitSettled(id))
        })
      )
      expect(delta).toEqual(deltas({ started: 4, completed: 4, attempts: 4, outcomeCount: 4 }))
    }).pipe(Effect.provide(testLayer({ send: [A2ATransportTest.message("done")] }))))
})

describe("queued delegations", () => {
  const queuedReply = A2ATransportTest.queued({ queueId: "q-1" })

  it.effect("queued counts finished{queued}; resolving it later counts finished{completed} and the time queued", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      const first = yield* measure(Effect.flatMap(d.delegate({ workspaceId: PEER, task: "busy" }), d.awaitSettled))
      const queued = first.value
      expect(queued.status).toBe("queued")
      expect(first.delta).toEqual(deltas({ started: 1, queued: 1, attempts: 1, outcomeCount: 1, outcomeSum: 0 }))

      yield* TestClock.adjust("42 seconds")
      // still queued on the platform: nothing is counted
      const pending = yield* measure(d.status(queued.id))
      expect(pending.value.status).toBe("queued")
      expect(pending.delta).toEqual(zero)

      yield* TestClock.adjust("18 seconds")
      yield* Effect.flatMap(platform, (p) => p.setRows([row(queued.id, "completed", { response_preview: "late" })]))
      const resolved = yield* measure(d.status(queued.id))
      expect(resolved.value.status).toBe("completed")
      // no new start or attempt; time to outcome stays the time to "queued"
      expect(resolved.delta).toEqual(deltas({ completed: 1, queuedCount: 1, queuedSum: 60 }))

      // once finished, reading it again counts nothing
      const again = yield* measure(d.status(queued.id))
      expect(again.delta).toEqual(zero)
    }).pipe(Effect.provide(testLayer({ send: [queuedReply] }))))

  it.effect("a queued delegation the platform fails counts finished{failed} and the time queued", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      const queued = yield* Effect.flatMap(d.delegate({ workspaceId: PEER, task: "busy" }), d.awaitSettled)
      yield* TestClock.adjust("90 seconds")
      yield* Effect.flatMap(platform, (p) => p.setRows([row(queued.id, "failed", { error: "peer crashed" })]))
      const resolved = yield* measure(d.status(queued.id))
      expect(resolved.value.status).toBe("failed")
      expect(resolved.delta).toEqual(deltas({ failed: 1, queuedCount: 1, queuedSum: 90 }))
    }).pipe(Effect.provide(testLayer({ send: [queuedReply] }))))

  it.effect("list resolves several queued delegations with one platform call and counts each", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      const a = yield* Effect.flatMap(d.delegate({ workspaceId: PEER, task: "a" }), d.awaitSettled)
      yield* TestClock.adjust("10 seconds")
      const b = yield* Effect.flatMap(d.delegate({ workspaceId: PEER, task: "b" }), d.awaitSettled)
      yield* TestClock.adjust("20 seconds")
      const p = yield* platform
      yield* p.setRows([row(a.id, "completed", { response_preview: "A" }), row(b.id, "failed", { error: "B" })])
      // the layer's reconciler has read the (empty) list while the clock moved; list() adds one call
      const callsBefore = yield* p.listCalls
      const listed = yield* measure(d.list)
      expect(listed.value.map((x) => x.status)).toEqual(["completed", "failed"])
      expect((yield* p.listCalls) - callsBefore).toBe(1)
      // a waited 30 s, b 20 s
      expect(listed.delta).toEqual(deltas({ completed: 1, failed: 1, queuedCount: 2, queuedSum: 50 }))
    }).pipe(Effect.provide(testLayer({ send: [queuedReply] }))))

  it.effect("a failing platform leaves it queued and counts nothing", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      const queued = yield* Effect.flatMap(d.delegate({ workspaceId: PEER, task: "busy" }), d.awaitSettled)
      const p = yield* platform
      yield* p.setRows([row(queued.id, "completed", { response_preview: "unreachable" })])
      yield* p.setFailing(true)
      const refreshed = yield* measure(d.status(queued.id))
      expect(refreshed.value.status).toBe("queued")
      expect(refreshed.delta).toEqual(zero)
    }).pipe(Effect.provide(testLayer({ send: [queuedReply] }))))
})

// --- exported through OpenTelemetry ----------------------------------------------------------------

const metricsSdk = () => {
  const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE)
  const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 60_000 })
  const layer = NodeSdk.layer(() => ({ resource: { serviceName: "t" }, metricReader: reader }))
  return { exporter, reader, layer }
}

/** The last exported data of a metric. */
const exported = (exporter: InMemoryMetricExporter, name: string): MetricData | undefined =>
  exporter.getMetrics()
    .flatMap((resource) => resource.scopeMetrics.flatMap((scope) => scope.metrics))
    .filter((metric) => metric.descriptor.name === name)
    .at(-1)

const pointValue = (metric: MetricData | undefined, attributes: Record<string, string> = {}): unknown => {
  const points: ReadonlyArray<DataPoint<unknown>> = metric?.dataPoints ?? []
  const point = points.find((p) =>
    Object.keys(attributes).length === Object.keys(p.attributes).length &&
    Object.entries(attributes).every(([key, value]) => p.attributes[key] === value)
  )
  return point?.value
}

describe("exported through OpenTelemetry", () => {
  it.effect("delegations.started, .finished{outcome}, .attempts, .retries and the histograms reach the metric reader", () => {
    const { exporter, layer, reader } = metricsSdk()
    let okSends = 0
    return Effect.gen(function*() {
      const d = yield* Delegations
      // one completed after a retry, one failed after three attempts, one queued
      const ok = yield* d.delegate({ workspaceId: PEER, task: "retry then ok" })
      const bad = yield* d.delegate({ workspaceId: PEER, task: "always refused" })
      const busy = yield* d.delegate({ workspaceId: PEER, task: "queue me" })
      const fiber = yield* Effect.fork(Effect.forEach([ok, bad, busy], (id) => d.awaitSettled(id)))
      yield* TestClock.adjust("10 minutes")
      const done = yield* Fiber.join(fiber)
      expect(done.map((x) => x.status)).toEqual(["completed", "failed", "queued"])

      yield* Effect.promise(() => reader.forceFlush())
      const now = yield* read

      const names = exporter.getMetrics()
        .flatMap((resource) => resource.scopeMetrics.flatMap((scope) => scope.metrics))
        .map((metric) => metric.descriptor.name)
      expect(names).toEqual(expect.arrayContaining([
        "delegations.started",
        "delegations.finished",
        "delegations.attempts",
        "delegations.retries",
        "delegations.time_to_outcome"
      ]))

      const started = exported(exporter, "delegations.started")
      expect(started?.dataPointType).toBe(DataPointType.SUM)
      expect(started?.descriptor.description).toBe("Delegations accepted and started")
      expect(started !== undefined && "isMonotonic" in started ? started.isMonotonic : undefined).toBe(true)
      expect(pointValue(started)).toBe(now.started)
      expect(now.started).toBeGreaterThanOrEqual(3)

      const finished = exported(exporter, "delegations.finished")
      expect(finished?.dataPointType).toBe(DataPointType.SUM)
      expect(pointValue(finished, { outcome: "completed" })).toBe(now.completed)
      expect(pointValue(finished, { outcome: "failed" })).toBe(now.failed)
      expect(pointValue(finished, { outcome: "queued" })).toBe(now.queued)
      expect(now.completed).toBeGreaterThanOrEqual(1)
      expect(now.failed).toBeGreaterThanOrEqual(1)
      expect(now.queued).toBeGreaterThanOrEqual(1)

      expect(pointValue(exported(exporter, "delegations.attempts"))).toBe(now.attempts)
      expect(pointValue(exported(exporter, "delegations.retries"))).toBe(now.retries)

      const timeToOutcome = exported(exporter, "delegations.time_to_outcome")
      expect(timeToOutcome?.dataPointType).toBe(DataPointType.HISTOGRAM)
      const histogram = pointValue(timeToOutcome) as Histogram | undefined
      expect(histogram?.count).toBe(now.outcomeCount)
      expect(histogram?.sum).toBe(now.outcomeSum)
      // the buckets are the 16 exponential boundaries from 5 ms (plus +Inf)
      expect(histogram?.buckets.boundaries.slice(0, 3)).toEqual([0.005, 0.01, 0.02])
      expect(histogram?.buckets.counts.reduce((a, b) => a + b, 0)).toBe(now.outcomeCount)
    }).pipe(Effect.provide(Layer.merge(
      testLayer({
        send: (request) =>
          request.text === "queue me"
            ? A2ATransportTest.queued()
            : request.text === "always refused" || (request.text === "retry then ok" && okSends++ === 0)
            ? A2ATransportTest.refused()
            : A2ATransportTest.message("ok")
      }),
      layer
    )))
  })
})
