/**
 * Spans through a real OpenTelemetry SDK with an in-memory exporter.
 */
import { NodeSdk } from "@effect/opentelemetry"
import { describe, expect, it } from "@effect/vitest"
import { InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base"
import type { ReadableSpan } from "@opentelemetry/sdk-trace-base"
import { A2ATransportTest, AuditMemory, Delegations } from "effect-a2a-delegation"
import { Effect, Fiber, Layer, TestClock } from "effect"
import { PEER, SELF, testLayer } from "./fixtures/layers.js"

const tracing = () => {
  const exporter = new InMemorySpanExporter()
  const layer = NodeSdk.layer(() => ({
    resource: { serviceName: "delegation-test" },
    spanProcessor: new SimpleSpanProcessor(exporter)
  }))
  return { exporter, layer }
}

const delegateSpan = (exporter: InMemorySpanExporter): ReadableSpan => {
  const spans = exporter.getFinishedSpans().filter((span) => span.name === "task_delegate")
  expect(spans).toHaveLength(1)
  return spans[0]!
}

const eventNames = (span: ReadableSpan) => span.events.map((event) => event.name)

describe("tracing", () => {
  it.effect("one task_delegate span per delegation, a child of the caller's span, with the A2A attributes", () => {
    const { exporter, layer } = tracing()
    return Effect.gen(function*() {
      const delegations = yield* Delegations
      const id = yield* delegations.delegate({ workspaceId: PEER, task: "trace me" }).pipe(Effect.withSpan("caller"))
      yield* delegations.awaitSettled(id)

      const span = delegateSpan(exporter)
      expect(span.attributes).toMatchObject({
        "workspace.id": SELF,
        "a2a.source_workspace_id": SELF,
        "a2a.target_workspace_id": PEER,
        "a2a.task_id": id
      })
      expect(span.status.code).toBe(1) // OK
      expect(eventNames(span)).toEqual(["a2a.attempt"])

      const caller = exporter.getFinishedSpans().find((s) => s.name === "caller")!
      expect(span.spanContext().traceId).toBe(caller.spanContext().traceId)
      expect(span.parentSpanContext?.spanId).toBe(caller.spanContext().spanId)

      // params.metadata.traceparent names this span; the audit trail carries its trace id.
      const [sent] = yield* (yield* A2ATransportTest.A2ATransportTest).sent
      expect(sent!.metadata.traceparent).toBe(`00-${span.spanContext().traceId}-${span.spanContext().spanId}-01`)
      const records = yield* (yield* AuditMemory.AuditMemory).records
      const ofDelegation = records.filter((r) => r["delegation_id"] === id)
      expect(ofDelegation.map((r) => r.outcome)).toEqual(["dispatched", "success"])
      for (const record of ofDelegation) expect(record.trace_id).toBe(span.spanContext().traceId)
      expect((yield* delegations.status(id)).traceId).toBe(span.spanContext().traceId)
    }).pipe(Effect.provide(Layer.merge(testLayer({ send: [A2ATransportTest.message("ok")] }), layer)))
  })

  it.effect("an event per attempt and per retry; error status when the delegation fails", () => {
    const { exporter, layer } = tracing()
    return Effect.gen(function*() {
      const delegations = yield* Delegations
      const id = yield* delegations.delegate({ workspaceId: PEER, task: "flaky" })
      const fiber = yield* Effect.fork(delegations.awaitSettled(id))
      yield* TestClock.adjust("1 minute")
      const done = yield* Fiber.join(fiber)
      expect(done.status).toBe("failed")

      const span = delegateSpan(exporter)
      // the SDK adds an `exception` event for the failure
      expect(eventNames(span)).toEqual(["a2a.attempt", "a2a.retry", "a2a.attempt", "a2a.retry", "a2a.attempt", "exception"])
      const retries = span.events.filter((event) => event.name === "a2a.retry")
      expect(retries.map((event) => event.attributes?.["a2a.retry.delay_ms"])).toEqual([5000, 10000])
      expect(span.status.code).toBe(2) // ERROR
      expect(span.status.message).toContain("refused")
    }).pipe(Effect.provide(Layer.merge(testLayer({ send: [A2ATransportTest.refused()] }), layer)))
  })

  it.effect("a queued delegation gets a queued event and an OK status", () => {
    const { exporter, layer } = tracing()
    return Effect.gen(function*() {
      const delegations = yield* Delegations
      const id = yield* delegations.delegate({ workspaceId: PEER, task: "busy peer" })
      expect((yield* delegations.awaitSettled(id)).status).toBe("queued")
      const span = delegateSpan(exporter)
      expect(eventNames(span)).toEqual(["a2a.attempt", "a2a.queued"])
      expect(span.status.code).toBe(1)
    }).pipe(Effect.provide(Layer.merge(testLayer({ send: [A2ATransportTest.queued({ queueId: "q-7" })] }), layer)))
  })

  it.effect("under a concurrency bound, a delegation that waited for a place is still a child of its caller's span", () => {
    const { exporter, layer } = tracing()
    return Effect.gen(function*() {
      const delegations = yield* Delegations
      const ids = yield* Effect.forEach(["first", "second", "third"], (task) =>
        delegations.delegate({ workspaceId: PEER, task }).pipe(Effect.withSpan(`caller ${task}`)))
      yield* Effect.forEach(ids, (id) => delegations.awaitSettled(id))

      const spans = exporter.getFinishedSpans()
      const delegated = spans.filter((span) => span.name === "task_delegate")
      expect(delegated).toHaveLength(3)
      for (const [i, task] of ["first", "second", "third"].entries()) {
        const caller = spans.find((span) => span.name === `caller ${task}`)!
        const span = delegated.find((s) => s.attributes["a2a.task_id"] === ids[i])!
        expect(span.spanContext().traceId).toBe(caller.spanContext().traceId)
        expect(span.parentSpanContext?.spanId).toBe(caller.spanContext().spanId)
      }
    }).pipe(Effect.provide(Layer.merge(
      testLayer({ send: [A2ATransportTest.message("ok")], settings: { concurrency: 1 } }),
      layer
    )))
  })
})
