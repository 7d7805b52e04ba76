/**
 * Every request the live layers make has a total deadline (headers and body) and a
 * response size limit, on every shipped Node client: a peer or platform that drip-feeds
 * its reply fails at the deadline, and an oversized reply fails with a typed size error
 * without being buffered. Real sockets on 127.0.0.1, live clock.
 */
import type { HttpClient } from "@effect/platform"
import { NodeHttpClient } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import {
  A2ATransport,
  A2ATransportHttp,
  Discovery,
  DiscoveryHttp,
  PeerEndpoint,
  PlatformMirror,
  PlatformMirrorHttp,
  PlatformHttpClient
} from "effect-a2a-delegation"
import { NodeHttpClientPooled } from "effect-a2a-delegation/node"
import { Context, Effect, Layer, Option } from "effect"
import type { Duration } from "effect"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"

const MiB = 1024 * 1024

/** Bytes the oversized replies were going to send, and what the server managed to write before the client hung up. */
interface Served {
  written: number
  closedEarly: boolean
}

/**
 * `/drip`: a 200 with a JSON body that never ends, one byte every 100 ms.
 * `/huge`: 100 MiB of JSON string, chunked (no length), written as the client reads.
 * `/huge-declared`: the same with its Content-Length.
 */
const hostileServer = Effect.acquireRelease(
  Effect.async<{ readonly http: Http.Server; readonly url: string; readonly served: Served }>((resume) => {
    const served: Served = { written: 0, closedEarly: false }
    const chunk = Buffer.alloc(64 * 1024, "a")
    const http = Http.createServer((req, res) => {
      req.resume()
      req.on("end", () => {
        if (req.url?.startsWith("/drip") === true) {
          res.writeHead(200, { "content-type": "application/json" })
          res.write("{\"a\": \"")
          const timer = setInterval(() => res.write("a"), 100)
          res.on("close", () => clearInterval(timer))
          return
        }
        const total = 100 * MiB
        res.writeHead(200, {
          "content-type": "application/json",
          ...(req.url === "/huge-declared" ? { "content-length": String(total) } : {})
        })
        const pump = () => {
          while (served.written < total) {
            served.written += chunk.length
            if (!res.write(chunk)) return void res.once("drain", pump)
          }
          res.end()
        }
        res.on("close", () => {
          if (served.written < total || !res.writableFinished) served.closedEarly = true
        })
        pump()
      })
    })
    http.listen(0, "127.0.0.1", () =>
      resume(Effect.succeed({ http, url: `http://127.0.0.1:${(http.address() as AddressInfo).port}`, served })))
  }),
  ({ http }) =>
    Effect.async<void>((resume) => {
      http.closeAllConnections()
      http.close(() => resume(Effect.void))
    })
)

const stockUndici: Layer.Layer<HttpClient.HttpClient> = NodeHttpClient.layerUndici

const clients: ReadonlyArray<readonly [string, Layer.Layer<HttpClient.HttpClient>]> = [
  ["NodeHttpClientPooled", NodeHttpClientPooled.layer()],
  ["NodeHttpClient.layerUndici", stockUndici]
]

/** The three live HTTP layers over `client`, built in the test's scope. */
const liveLayers = (
  client: Layer.Layer<HttpClient.HttpClient>,
  url: string,
  timeout: Duration.DurationInput,
  maxResponseBytes?: number
) => {
  const platform = { platformUrl: url, workspaceId: "ws-self", platformToken: Option.none(), orgId: Option.none() }
  return Effect.map(
    Layer.build(Layer.mergeAll(
      A2ATransportHttp.layer({ workspaceId: "ws-self", timeout, protocol: "0.3", maxResponseBytes }),
      DiscoveryHttp.layer({ timeout, maxResponseBytes }),
      PlatformMirrorHttp.layer({ timeout, maxResponseBytes })
    ).pipe(Layer.provide(PlatformHttpClient.layer(platform)), Layer.provide(client))),
    (context) => ({
      transport: Context.get(context, A2ATransport),
      discovery: Context.get(context, Discovery),
      mirror: Context.get(context, PlatformMirror)
    })
  )
}

const sendTo = (transport: A2ATransport["Type"], url: string) =>
  transport.send({
    endpoint: new PeerEndpoint({ id: "ws-peer", url }),
    protocol: { version: "0.3", url, source: "pinned" },
    messageId: "m-1",
    requestId: "r-1",
    delegationId: "d-1",
    text: "hello",
    metadata: { parent_task_id: "d-1", source_workspace_id: "ws-self", traceparent: null }
  })

const elapsed = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.gen(function*() {
    const start = Date.now()
    const error = yield* Effect.flip(effect)
    return { error, millis: Date.now() - start }
  })

describe("request bounds", () => {
  for (const [name, client] of clients) {
    it.scopedLive(`${name}: a drip-fed reply fails at the 2 s deadline, not when the drip stops`, () =>
      Effect.gen(function*() {
        const { url } = yield* hostileServer
        const { discovery, mirror, transport } = yield* liveLayers(client, `${url}/drip`, "2 seconds")
        const [send, discover, list] = yield* Effect.all(
          [elapsed(sendTo(transport, `${url}/drip`)), elapsed(discovery.resolve("ws-peer")), elapsed(mirror.list)],
          { concurrency: "unbounded" }
        ).pipe(Effect.timeoutFail({ duration: "10 seconds", onTimeout: () => new Error("a drip-fed request outlived its deadline") }))
        for (const { millis } of [send, discover, list]) {
          expect(millis).toBeGreaterThanOrEqual(1_900)
          expect(millis).toBeLessThan(3_000)
        }
        expect(send.error._tag).toBe("A2ATransportError")
        if (send.error._tag === "A2ATransportError") expect(send.error.reason).toBe("Timeout")
        expect(discover.error.reason).toBe("Transport")
        expect(discover.error.message).toContain("timed out after 2s")
        expect(list.error.reason).toBe("Timeout")
      }), 15_000)

    for (const path of ["/huge", "/huge-declared"]) {
      it.scopedLive(`${name}: a 100 MiB reply (${path}) fails with a typed size error, never re-sent, and is not buffered`, () =>
        Effect.gen(function*() {
          const { served, url } = yield* hostileServer
          const { mirror, transport } = yield* liveLayers(client, url, "30 seconds", 1 * MiB)
          const error = yield* Effect.flip(sendTo(transport, `${url}${path}`))
          expect(error._tag).toBe("A2AResponseError")
          if (error._tag === "A2AResponseError") {
            expect(error.reason).toBe("TooLarge")
            expect(error.status).toBe(200)
            expect(error.message).toBe(`Peer reply (HTTP 200) is too large: more than ${MiB} bytes`)
          }
          // The client hung up long before the server was done (the socket's buffers hold a few MiB at most).
          yield* Effect.sleep("100 millis")
          expect(served.closedEarly).toBe(true)
          expect(served.written).toBeLessThan(20 * MiB)
          // A platform answer is bounded the same way (this server answers every other path with 100 MiB).
          const listed = yield* Effect.flip(mirror.list)
          expect(listed.reason).toBe("TooLarge")
          expect(listed.message).toBe(`Platform list failed (TooLarge HTTP 200): the reply is larger than ${MiB} bytes`)
        }), 30_000)
    }
  }

  it.scopedLive("NodeHttpClientPooled: a 100 MiB reply with the default 10 MiB limit grows the heap by far less than the reply", () =>
    Effect.gen(function*() {
      const { url } = yield* hostileServer
      const { transport } = yield* liveLayers(NodeHttpClientPooled.layer(), url, "30 seconds")
      const before = process.memoryUsage().rss
      const error = yield* Effect.flip(sendTo(transport, `${url}/huge`))
      const grown = process.memoryUsage().rss - before
      expect(error._tag === "A2AResponseError" && error.reason).toBe("TooLarge")
      expect(grown).toBeLessThan(30 * MiB)
    }), 30_000)
})
