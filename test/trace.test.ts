/**
 * One trace end to end over real HTTP: the caller's span, the `task_delegate`
 * span, the `traceparent` header the peer receives and `params.metadata.traceparent`,
 * through a real OpenTelemetry SDK (in-memory exporter), a `LocalPlatform` and a
 * `LocalPeer` on 127.0.0.1.
 */
import { NodeSdk } from "@effect/opentelemetry"
import { HttpClient } from "@effect/platform"
import { NodeHttpClient } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { SpanKind } from "@opentelemetry/api"
import { InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base"
import type { ReadableSpan } from "@opentelemetry/sdk-trace-base"
import { Delegations, DelegationsLayer } from "effect-a2a-delegation"
import { NodeHttpClientPooled } from "effect-a2a-delegation/node"
import { LocalPeer, LocalPlatform } from "effect-a2a-delegation/testing"
import { Context, Effect, Layer, Logger, LogLevel, Schedule } from "effect"

const SELF = "ws-self"
// A workspace UUID: the platform discovers nothing else.
const PEER = "00000000-0000-4000-8000-000000706565"

interface Traceparent {
  readonly traceId: string
  readonly parentId: string
  readonly flags: string
}

const parseTraceparent = (value: unknown): Traceparent => {
  expect(value).toBeTypeOf("string")
  const match = /^00-([0-9a-f]{32})-([0-9a-f]{16})-(0[01])$/.exec(String(value))
  expect(match, `a W3C traceparent, got ${String(value)}`).not.toBeNull()
  return { traceId: match![1]!, parentId: match![2]!, flags: match![3]! }
}

const field = (value: unknown, ...path: ReadonlyArray<string>): unknown =>
  path.reduce<unknown>(
    (current, key) =>
      typeof current === "object" && current !== null ? (current as Record<string, unknown>)[key] : undefined,
    value
  )

const only = (spans: ReadonlyArray<ReadableSpan>, name: string): ReadableSpan => {
  const found = spans.filter((span) => span.name === name)
  expect(found.map((span) => span.name)).toEqual([name])
  return found[0]!
}

/**
 * Starts a platform and a peer, builds the live stack over `client` for the test's
 * scope, and delegates once inside an `agent.turn` span. Everything runs under a
 * real OpenTelemetry SDK whose finished spans land in the returned exporter.
 */
const delegateInTrace = (
  client: Layer.Layer<HttpClient.HttpClient>,
  /** Wraps the caller's `delegate`, whose fiber settings the delegation's own fiber inherits. */
  around: (platformUrl: string) => <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R> = () => (effect) =>
    effect
) => {
  const exporter = new InMemorySpanExporter()
  const sdk = NodeSdk.layer(() => ({
    resource: { serviceName: "t" },
    spanProcessor: new SimpleSpanProcessor(exporter)
  }))
  return Effect.gen(function*() {
    // The platform's proxy needs a client; it is not used by direct dispatch.
    const platformHttp = yield* Layer.build(NodeHttpClient.layerUndici)
    const platform = yield* Effect.provide(LocalPlatform.make(), platformHttp)
    // A v0.3 peer: the assertions below read the v0.3 wire (method, params.metadata).
    const peer = yield* LocalPeer.make({ name: PEER, protocol: "0.3", behaviour: { reply: (task) => `echo: ${task}` } })
    const token = yield* platform.register({ id: SELF })
    yield* platform.register({ id: PEER, url: peer.url })

    const delegations = yield* Layer.build(
      DelegationsLayer.layer({ workspaceId: SELF, platformUrl: platform.url, platformToken: token }).pipe(
        Layer.provide(client)
      )
    ).pipe(Effect.map(Context.get(Delegations)))

    const { caller, done } = yield* Effect.gen(function*() {
      const caller = yield* Effect.currentSpan
      const id = yield* delegations.delegate({ workspaceId: PEER, task: "ping" })
      const done = yield* delegations.await(id)
      return { caller, done }
    }).pipe(Effect.withSpan("agent.turn"), around(platform.url))

    expect(done.status).toBe("completed")
    expect(done.result).toBe("echo: ping")

    const requests = yield* peer.requests
    expect(requests.map((r) => r.method)).toEqual(["message/send"])
    // The peer's server span ends after its response is written, so it may trail the outcome slightly.
    const spans = yield* Effect.sync(() => exporter.getFinishedSpans()).pipe(
      Effect.repeat({
        schedule: Schedule.addDelay(Schedule.identity<ReadonlyArray<ReadableSpan>>(), () => "10 millis"),
        until: (all) => all.some((span) => isPeerServerSpan(span, peer.url))
      }),
      Effect.timeoutFail({ duration: "3 seconds", onTimeout: () => new Error("the peer's server span was not exported") })
    )
    const delegate = only(spans, "task_delegate")
    const turn = only(spans, "agent.turn")
    return {
      caller,
      done,
      request: requests[0]!,
      spans,
      delegate,
      turn,
      peerUrl: peer.url,
      platformUrl: platform.url,
      platformRequests: yield* platform.requests
    }
  }).pipe(
    Effect.scoped,
    Effect.provide(sdk),
    // audit lines go to the log at Info; keep the output to warnings
    Logger.withMinimumLogLevel(LogLevel.Warning)
  )
}

/** The peer's own server span for the A2A POST: the trace continues on the other side. */
const isPeerServerSpan = (span: ReadableSpan, peerUrl: string): boolean =>
  span.name === "http.server POST" && span.attributes["url.full"] === peerUrl

const peerServerSpan = (spans: ReadonlyArray<ReadableSpan>, peerUrl: string): ReadableSpan => {
  const found = spans.filter((span) => isPeerServerSpan(span, peerUrl))
  expect(found).toHaveLength(1)
  return found[0]!
}

describe("one trace from the caller to the peer, over real HTTP", () => {
  // Both are built on HttpClient.make: each request gets an http.client span, propagated as traceparent and b3.
  for (const [name, client] of [
    ["NodeHttpClientPooled (the recommended client)", NodeHttpClientPooled.layer()],
    ["NodeHttpClient.layerUndici", NodeHttpClient.layerUndici]
  ] as const) {
    it.live(`${name}: the peer's traceparent and b3 name an http.client span under task_delegate`, () =>
      Effect.gen(function*() {
        const { caller, delegate, done, peerUrl, request, spans, turn } = yield* delegateInTrace(client)
        const traceId = caller.traceId
        expect(turn.spanContext().spanId).toBe(caller.spanId)

        // task_delegate is a child of the caller's span
        expect(delegate.spanContext().traceId).toBe(traceId)
        expect(delegate.parentSpanContext?.spanId).toBe(caller.spanId)
        expect(delegate.attributes).toMatchObject({
          "a2a.task_id": done.id,
          "a2a.target_workspace_id": PEER,
          "a2a.source_workspace_id": SELF
        })
        expect(done.traceId).toBe(traceId)

        // the HTTP headers: same trace, parent = the client's http.client span for the A2A POST ...
        const header = parseTraceparent(request.headers["traceparent"])
        expect(header.traceId).toBe(traceId)
        expect(header.flags).toBe("01")
        expect(header.parentId).not.toBe(delegate.spanContext().spanId)
        const httpSpan = spans.find((span) => span.spanContext().spanId === header.parentId)
        expect(httpSpan, "the span named by the peer's traceparent was exported").toBeDefined()
        expect(httpSpan!.name).toBe("http.client POST")
        expect(httpSpan!.kind).toBe(SpanKind.CLIENT)
        expect(httpSpan!.attributes["url.full"]).toBe(peerUrl)
        expect(httpSpan!.attributes["http.response.status_code"]).toBe(200)
        // ... which is a child of task_delegate; b3 says the same: trace, span, sampled, parent
        expect(httpSpan!.spanContext().traceId).toBe(traceId)
        expect(httpSpan!.parentSpanContext?.spanId).toBe(delegate.spanContext().spanId)
        expect(request.headers["b3"]).toBe(`${traceId}-${header.parentId}-1-${delegate.spanContext().spanId}`)
        // the peer's server span continues the trace under that http.client span
        const server = peerServerSpan(spans, peerUrl)
        expect(server.spanContext().traceId).toBe(traceId)
        expect(server.parentSpanContext?.spanId).toBe(header.parentId)

        // the discovery call (made before the send) is traced under task_delegate as well
        const discovery = spans.find((span) =>
          span.name === "http.client GET" && String(span.attributes["url.full"]).endsWith(`/registry/discover/${PEER}`)
        )
        expect(discovery?.parentSpanContext?.spanId).toBe(delegate.spanContext().spanId)

        // params.metadata.traceparent still names task_delegate (not the HTTP span)
        expect(field(request.body, "params", "metadata", "traceparent")).toBe(
          `00-${traceId}-${delegate.spanContext().spanId}-01`
        )
        expect(field(request.body, "params", "metadata", "parent_task_id")).toBe(done.id)
      }))
  }

  it.live("platform calls left untraced with HttpClient.currentTracerDisabledWhen: only the A2A POST has a client span", () =>
    Effect.gen(function*() {
      const { delegate, peerUrl, platformRequests, request, spans } = yield* delegateInTrace(
        NodeHttpClientPooled.layer(),
        (platformUrl) => (effect) =>
          // the README's predicate
          Effect.locally(effect, HttpClient.currentTracerDisabledWhen, (request) =>
            request.url.startsWith(platformUrl) && !request.url.endsWith("/a2a"))
      )
      // the peer's calls (its agent card, the A2A POST) keep their spans and propagation
      const clientSpans = spans.filter((span) => span.kind === SpanKind.CLIENT && span.name.startsWith("http.client"))
      const peerOrigin = new URL(peerUrl).origin
      expect(clientSpans.map((span) => new URL(String(span.attributes["url.full"])).origin)).toEqual(
        clientSpans.map(() => peerOrigin)
      )
      const post = only(clientSpans, "http.client POST")
      expect(post.attributes["url.full"]).toBe(peerUrl)
      expect(post.parentSpanContext?.spanId).toBe(delegate.spanContext().spanId)
      expect(parseTraceparent(request.headers["traceparent"]).parentId).toBe(post.spanContext().spanId)
      // record, discover, update and notify were made, without a span or trace headers
      const made = platformRequests.filter((r) => !r.path.startsWith("/registry/register"))
      expect(made.length).toBe(4)
      for (const r of made) expect(r.headers["traceparent"]).toBeUndefined()
    }))
})
