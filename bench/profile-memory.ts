/**
 * The live stack over an in-memory HttpClient (no sockets): the library's own cost per delegation.
 */
import { HttpClient, HttpClientResponse } from "@effect/platform"
import { Context, Effect, Layer, Logger, LogLevel } from "effect"
import { Delegations, DelegationsLayer, NativeRequestTimeout } from "effect-a2a-delegation"

const n = Number(process.argv[2] ?? 5000)
const rounds = Number(process.argv[3] ?? 5)
const reply = JSON.stringify({
  jsonrpc: "2.0",
  id: null,
  result: { kind: "message", role: "agent", messageId: "m", parts: [{ kind: "text", text: "ok" }] }
})
const client = HttpClient.make((request) =>
  Effect.succeed(HttpClientResponse.fromWeb(request, new Response(
    request.url.endsWith("/a2a")
      ? reply
      : request.url.includes("/registry/discover/")
      ? JSON.stringify({ id: "ws-peer", url: "http://peer.invalid/a2a" })
      : "{}",
    { status: 200 }
  )))
).pipe(HttpClient.withTracerDisabledWhen(() => true))

const layer = DelegationsLayer.layer({ workspaceId: "ws-bench", platformUrl: "http://platform.invalid", platformToken: "t" })
  .pipe(Layer.provide(Layer.merge(
    Layer.succeed(HttpClient.HttpClient, client),
    Layer.succeed(NativeRequestTimeout, { enforced: true })
  )))

void Effect.runPromise(
  Effect.gen(function*() {
    const delegations = yield* Effect.map(Layer.build(layer), Context.get(Delegations))
    for (let round = 0; round < rounds; round++) {
      const start = performance.now()
      yield* Effect.forEach(
        Array.from({ length: n }, (_, i) => i),
        (i) => Effect.flatMap(delegations.delegate({ workspaceId: "ws-peer", task: `task ${i}` }), delegations.await),
        { concurrency: 1000, discard: true }
      )
      const ms = performance.now() - start
      console.log(`${n} delegations in memory: ${Math.round(n / (ms / 1000))}/s, ${(ms * 1000 / n).toFixed(0)} µs each`)
    }
  }).pipe(Effect.scoped, Effect.orDie, Logger.withMinimumLogLevel(LogLevel.Warning))
)
