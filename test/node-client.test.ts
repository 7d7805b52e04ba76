/**
 * `NodeHttpClientPooled`, the recommended undici `HttpClient`, against raw `node:http`
 * servers on 127.0.0.1: what goes over the wire, how the response reads back (whole
 * or streamed as it arrives), transport and URL errors, interruption and timeouts (the
 * abort reaches the socket), trace propagation, and the layer's release. Real sockets,
 * live clock; every wait for the server is on a server-side signal, bounded so a
 * failure is quick.
 */
import { Cookies, HttpBody, HttpClient, HttpClientError, HttpClientRequest } from "@effect/platform"
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
import { Chunk, Context, Deferred, Duration, Effect, Exit, Fiber, Layer, Option, Stream } from "effect"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"

/** A request as the server saw it, body read whole. */
interface Received {
  readonly method: string
  readonly url: string
  readonly headers: Http.IncomingHttpHeaders
  readonly body: Buffer
}

type Handler = (received: Received, res: Http.ServerResponse, req: Http.IncomingMessage) => void

/** A raw HTTP server on 127.0.0.1, an ephemeral port, for the current scope; records each request before `handle` runs. */
const server = (handle: Handler) =>
  Effect.acquireRelease(
    Effect.async<{ readonly http: Http.Server; readonly url: string; readonly received: () => ReadonlyArray<Received> }>(
      (resume) => {
        const received: Array<Received> = []
        const http = Http.createServer((req, res) => {
          const chunks: Array<Buffer> = []
          req.on("data", (chunk: Buffer) => chunks.push(chunk))
          req.on("end", () => {
            const entry: Received = {
              method: req.method ?? "",
              url: req.url ?? "",
              headers: req.headers,
              body: Buffer.concat(chunks)
            }
            received.push(entry)
            handle(entry, res, req)
          })
        })
        // Longer than any wait here: only the client may close an idle keep-alive socket.
        http.keepAliveTimeout = 60_000
        http.listen(0, "127.0.0.1", () => {
          const { port } = http.address() as AddressInfo
          resume(Effect.succeed({ http, url: `http://127.0.0.1:${port}`, received: () => [...received] }))
        })
      }
    ),
    ({ http }) =>
      Effect.async<void>((resume) => {
        http.closeAllConnections()
        http.close(() => resume(Effect.void))
      })
  )

/** Fails the test (instead of hanging) when `effect` takes longer than `seconds`. */
const within = <A, E>(effect: Effect.Effect<A, E>, what: string, seconds = 3) =>
  Effect.timeoutFail(effect, { duration: Duration.seconds(seconds), onTimeout: () => new Error(`timed out: ${what}`) })

/** Completes `deferred` from a Node callback. */
const signal = (deferred: Deferred.Deferred<void>) => () => Deferred.unsafeDone(deferred, Exit.void)

const codeOf = (error: HttpClientError.HttpClientError): unknown =>
  typeof error.cause === "object" && error.cause !== null ? (error.cause as { readonly code?: unknown }).code : undefined

const bytes = (text: string) => new TextEncoder().encode(text)

const Pooled = NodeHttpClientPooled.layer()

describe("NodeHttpClientPooled", () => {
  it.scopedLive("GET: method, path and query, headers reach the server; status, text, json, headers, cookies come back", () =>
    Effect.gen(function*() {
      const { received, url } = yield* server((_, res) => {
        res.statusCode = 200
        res.setHeader("Content-Type", "application/json")
        res.setHeader("X-Repeated", ["one", "two"])
        res.setHeader("Set-Cookie", ["session=abc123; Path=/; HttpOnly", "theme=dark; Max-Age=60"])
        res.end(JSON.stringify({ items: [1, 2], name: "héllo" }))
      })
      const client = yield* HttpClient.HttpClient

      const response = yield* client.get(`${url}/items`, {
        urlParams: { page: 2, tag: "a b&c" },
        headers: { "X-Custom": "yes", authorization: "Bearer t" }
      })

      expect(response.status).toBe(200)
      expect(yield* response.text).toBe(`{"items":[1,2],"name":"héllo"}`)
      expect(yield* response.json).toEqual({ items: [1, 2], name: "héllo" })
      expect(response.headers["content-type"]).toBe("application/json")
      expect(response.headers["x-repeated"]).toBe("one, two")
      expect(Object.keys(response.headers).every((name) => name === name.toLowerCase())).toBe(true)
      expect(Cookies.toRecord(response.cookies)).toEqual({ session: "abc123", theme: "dark" })
      expect(Option.map(Cookies.get(response.cookies, "session"), (c) => c.options?.httpOnly)).toEqual(Option.some(true))

      const [seen] = received()
      expect(seen!.method).toBe("GET")
      expect(seen!.url).toBe("/items?page=2&tag=a+b%26c")
      expect(seen!.headers["x-custom"]).toBe("yes")
      expect(seen!.headers["authorization"]).toBe("Bearer t")
      expect(seen!.body.length).toBe(0)
    }).pipe(Effect.provide(Pooled)))

  it.scopedLive("POST: the exact JSON body and its content type reach the server; the status comes back", () =>
    Effect.gen(function*() {
      const { received, url } = yield* server((seen, res) => {
        res.statusCode = 201
        res.setHeader("Content-Type", "application/json")
        res.end(JSON.stringify({ echoed: JSON.parse(seen.body.toString("utf8")) as unknown }))
      })
      const client = yield* HttpClient.HttpClient
      const payload = { task: "summarise ✓", n: 3, nested: { ok: true, list: ["a", null] } }

      const first = yield* client.execute(
        HttpClientRequest.post(`${url}/tasks?x=1`).pipe(HttpClientRequest.bodyUnsafeJson(payload))
      )
      const second = yield* client.post(`${url}/again`, { body: HttpBody.unsafeJson([1, "two"]) })

      expect(first.status).toBe(201)
      expect(yield* first.json).toEqual({ echoed: payload })
      expect(second.status).toBe(201)
      const [a, b] = received()
      expect(a!.method).toBe("POST")
      expect(a!.url).toBe("/tasks?x=1")
      expect(a!.headers["content-type"]).toBe("application/json")
      expect(a!.body.toString("utf8")).toBe(JSON.stringify(payload))
      expect(a!.headers["content-length"]).toBe(String(a!.body.length))
      expect(b!.url).toBe("/again")
      expect(b!.body.toString("utf8")).toBe(`[1,"two"]`)
    }).pipe(Effect.provide(Pooled)))

  it.scopedLive("a streamed request body arrives whole", () =>
    Effect.gen(function*() {
      const { received, url } = yield* server((_, res) => res.end("ok"))
      const client = yield* HttpClient.HttpClient
      const big = new Uint8Array(150_000).map((_, i) => i % 251)

      const response = yield* client.execute(
        HttpClientRequest.put(`${url}/upload`).pipe(
          HttpClientRequest.bodyStream(Stream.make(bytes("hello "), bytes("streamed "), big, bytes(" wörld")))
        )
      )

      expect(yield* response.text).toBe("ok")
      const [seen] = received()
      expect(seen!.method).toBe("PUT")
      expect(seen!.headers["transfer-encoding"]).toBe("chunked")
      const expected = Buffer.concat([Buffer.from("hello streamed "), big, Buffer.from(" wörld")])
      expect(seen!.body.length).toBe(expected.length)
      expect(seen!.body.equals(expected)).toBe(true)
    }).pipe(Effect.provide(Pooled)))

  it.scopedLive("a response in several chunks, multi-byte characters split between them, is reassembled exactly", () =>
    Effect.gen(function*() {
      const text = "héllo wörld, 😀 and €uro: done"
      const whole = Buffer.from(text)
      // Cut inside "é" (2 bytes), inside "😀" (4 bytes) and inside "€" (3 bytes).
      const cuts = [2, whole.indexOf(Buffer.from("😀")) + 1, whole.indexOf(Buffer.from("😀")) + 3, whole.indexOf(Buffer.from("€")) + 2]
      const parts = [0, ...cuts].map((start, i) => whole.subarray(start, cuts[i] ?? whole.length))
      const { url } = yield* server((_, res) => {
        res.setHeader("Content-Type", "text/plain; charset=utf-8")
        const write = (i: number): void => {
          if (i === parts.length) return void res.end()
          res.write(parts[i])
          setTimeout(() => write(i + 1), 15)
        }
        write(0)
      })
      const client = yield* HttpClient.HttpClient

      const response = yield* client.get(url)

      expect(yield* response.text).toBe(text)
      expect(new Uint8Array(yield* response.arrayBuffer)).toEqual(new Uint8Array(whole))
      const streamed = yield* Stream.runCollect(response.stream)
      expect(Buffer.concat(Chunk.toArray(streamed)).toString("utf8")).toBe(text)
    }).pipe(Effect.provide(Pooled)))

  it.scopedLive("a large body (> 64 KiB) of multi-byte text is reassembled exactly", () =>
    Effect.gen(function*() {
      const text = "é€😀abc ".repeat(30_000) // ~480 KB
      const { url } = yield* server((_, res) => {
        res.setHeader("Content-Length", Buffer.byteLength(text))
        res.end(text)
      })
      const client = yield* HttpClient.HttpClient

      const body = yield* Effect.flatMap(client.get(url), (response) => response.text)

      expect(body.length).toBe(text.length)
      expect(body === text).toBe(true)
    }).pipe(Effect.provide(Pooled)))

  it.scopedLive("the other body readers: urlParamsBody, formData, and a Decode error for bad JSON", () =>
    Effect.gen(function*() {
      const { url } = yield* server((seen, res) => {
        if (seen.url === "/form") {
          res.setHeader("Content-Type", "application/x-www-form-urlencoded")
          return void res.end("a=1&b=two+words&a=3")
        }
        res.setHeader("Content-Type", "application/json")
        res.end("{not json")
      })
      const client = yield* HttpClient.HttpClient

      const form = yield* client.get(`${url}/form`)
      expect(yield* form.urlParamsBody).toEqual([["a", "1"], ["b", "two words"], ["a", "3"]])
      const data = yield* form.formData
      expect(data.getAll("a")).toEqual(["1", "3"])
      expect(data.get("b")).toBe("two words")

      const bad = yield* client.get(`${url}/bad`)
      const error = yield* Effect.flip(bad.json)
      expect(error._tag).toBe("ResponseError")
      expect(error.reason).toBe("Decode")
      expect(error.response.status).toBe(200)
    }).pipe(Effect.provide(Pooled)))

  // undici encodes only its own FormData class; the global one must be copied over first
  // (`NodeHttpClient.layerUndici` passes it as is, and the request fails).
  it.scopedLive("a global FormData request body arrives as multipart/form-data", () =>
    Effect.gen(function*() {
      const { received, url } = yield* server((_, res) => res.end("ok"))
      const client = yield* HttpClient.HttpClient
      const form = new FormData()
      form.append("field", "value ✓")
      form.append("file", new Blob(["file contents"], { type: "text/plain" }), "notes.txt")

      yield* client.execute(HttpClientRequest.post(`${url}/form`).pipe(HttpClientRequest.bodyFormData(form)))

      const [seen] = received()
      expect(seen!.headers["content-type"]).toMatch(/^multipart\/form-data; boundary=/)
      const parsed = yield* Effect.promise(() =>
        new Response(new Uint8Array(seen!.body), { headers: { "content-type": seen!.headers["content-type"]! } }).formData()
      )
      expect(parsed.get("field")).toBe("value ✓")
      const file = parsed.get("file")
      expect(file).toBeInstanceOf(Blob)
      expect(yield* Effect.promise(() => (file as Blob).text())).toBe("file contents")
    }).pipe(Effect.provide(Pooled)))

  it.scopedLive("a refused connection fails with a Transport RequestError", () =>
    Effect.gen(function*() {
      // A port that was listened on and then closed refuses connections.
      const { url } = yield* Effect.scoped(server((_, res) => res.end()))
      const client = yield* HttpClient.HttpClient

      const error = yield* Effect.flip(client.get(`${url}/anyone`))

      expect(error._tag).toBe("RequestError")
      expect(error.reason).toBe("Transport")
      expect(codeOf(error)).toBe("ECONNREFUSED")
      expect(error.request.url).toBe(`${url}/anyone`)
    }).pipe(Effect.provide(Pooled)))

  it.scopedLive("an invalid URL fails with an InvalidUrl RequestError", () =>
    Effect.gen(function*() {
      const client = yield* HttpClient.HttpClient

      for (const url of ["http://exa mple.com/ x", "not a url", "http://"]) {
        const error = yield* Effect.flip(client.get(url))
        expect(error._tag, url).toBe("RequestError")
        expect(error.reason, url).toBe("InvalidUrl")
      }
    }).pipe(Effect.provide(Pooled)))

  it.scopedLive("interrupting a request in flight closes its connection; the client still works afterwards", () =>
    Effect.gen(function*() {
      const arrived = yield* Deferred.make<void>()
      const closed = yield* Deferred.make<void>()
      const { url } = yield* server((seen, res, req) => {
        if (seen.url === "/fast") return void res.end("fast")
        // Never answers; tells the test when the request is in and when its socket goes.
        req.socket.once("close", signal(closed))
        signal(arrived)()
      })
      const client = yield* HttpClient.HttpClient

      const fiber = yield* Effect.fork(client.get(`${url}/slow`))
      yield* within(Deferred.await(arrived), "the server receives the request")
      expect(yield* Deferred.isDone(closed)).toBe(false)
      yield* Fiber.interrupt(fiber)

      yield* within(Deferred.await(closed), "the server sees the socket closed")
      const exit = yield* Fiber.await(fiber)
      expect(Exit.isInterrupted(exit)).toBe(true)
      const after = yield* within(Effect.flatMap(client.get(`${url}/fast`), (r) => r.text), "a request after")
      expect(after).toBe("fast")
    }).pipe(Effect.provide(Pooled)))

  it.scopedLive("a request cut short by Effect.timeout is aborted: the server sees its socket close", () =>
    Effect.gen(function*() {
      const closed = yield* Deferred.make<void>()
      const { url } = yield* server((_, __, req) => {
        req.socket.once("close", signal(closed))
      })
      const client = yield* HttpClient.HttpClient

      const outcome = yield* client.get(`${url}/silent`).pipe(Effect.timeoutOption("200 millis"))
      expect(Option.isNone(outcome)).toBe(true)
      yield* within(Deferred.await(closed), "the server sees the socket closed")
    }).pipe(Effect.provide(Pooled)))

  // Under 2 s the bound is an Effect timer; from 2 s on, undici's own (which tick every half second).
  for (const { bound, early, late, text } of [
    { bound: "300 millis", early: 290, late: 2_000, text: "300ms" },
    { bound: "2 seconds", early: 1_400, late: 3_500, text: "2s" }
  ] as const) {
  it.scopedLive(`the live layers over it, bound ${text}: a silent server fails each request at the bound with a typed error, and its socket is closed`, () =>
    Effect.gen(function*() {
      const allClosed = yield* Deferred.make<void>()
      let open = 0
      const { received, url } = yield* server((seen, res, req) => {
        open++
        req.socket.once("close", () => {
          if (--open === 0) Deferred.unsafeDone(allClosed, Exit.void)
        })
        // "/stall" sends its headers and part of the body, then stalls; everything else never answers.
        if (seen.url === "/stall") {
          res.writeHead(200, { "Content-Type": "application/json" })
          res.write(`{"jsonrpc": "2.0", "id": "r`)
        }
      })
      const timeout = bound
      const platform = { platformUrl: url, workspaceId: "ws-self", platformToken: Option.none(), orgId: Option.none() }
      const layers = Layer.mergeAll(
        A2ATransportHttp.layer({ workspaceId: "ws-self", timeout, protocol: "0.3" }),
        DiscoveryHttp.layer({ timeout }),
        PlatformMirrorHttp.layer({ timeout })
      ).pipe(Layer.provide(PlatformHttpClient.layer(platform)), Layer.provide(Pooled))
      const { discovery, mirror, transport } = yield* Effect.map(Layer.build(layers), (context) => ({
        transport: Context.get(context, A2ATransport),
        discovery: Context.get(context, Discovery),
        mirror: Context.get(context, PlatformMirror)
      }))
      const send = (path: string) =>
        transport.send({
          endpoint: new PeerEndpoint({ id: "ws-peer", url: `${url}${path}` }),
          protocol: { version: "0.3", url: `${url}${path}`, source: "pinned" },
          messageId: "m-1",
          requestId: "r-1",
          delegationId: "d-1",
          text: "hello",
          metadata: { parent_task_id: "d-1", source_workspace_id: "ws-self", traceparent: null }
        })
      const timed = <A, E>(effect: Effect.Effect<A, E>) =>
        Effect.gen(function*() {
          const start = Date.now()
          const error = yield* Effect.flip(effect)
          return { error, elapsed: Date.now() - start }
        })

      const [silent, stalled, discover, list] = yield* within(
        Effect.all([timed(send("/silent")), timed(send("/stall")), timed(discovery.resolve("ws-peer")), timed(mirror.list)], {
          concurrency: "unbounded"
        }),
        "four timeouts",
        8
      )

      for (const { elapsed } of [silent, stalled, discover, list]) {
        expect(elapsed).toBeGreaterThanOrEqual(early)
        expect(elapsed).toBeLessThan(late)
      }
      for (const { error } of [silent, stalled]) {
        expect(error._tag).toBe("A2ATransportError")
        if (error._tag === "A2ATransportError") expect(error.reason).toBe("Timeout")
        expect(error.message).toBe(`Transport error: request timed out after ${text}`)
      }
      expect(discover.error.reason).toBe("Transport")
      expect(discover.error.message).toBe(`Discovery error: timed out after ${text}`)
      expect(list.error.reason).toBe("Timeout")
      expect(list.error.message).toBe(`Platform list failed (Timeout): no answer within ${text}`)
      expect(received().map((r) => r.url).sort()).toEqual(
        ["/registry/discover/ws-peer", "/silent", "/stall", "/workspaces/ws-self/delegations"]
      )
      // every request was aborted at its timeout: the server sees all four sockets close
      yield* within(Deferred.await(allClosed), "the server sees every socket closed")
    }).pipe(Effect.provide(Pooled)), 15_000)
  }

  it.scopedLive("a response body is streamed as it arrives: the first chunk is read before the server sends the rest", () =>
    Effect.gen(function*() {
      const firstRead = yield* Deferred.make<void>()
      const { url } = yield* server((seen, res) => {
        res.writeHead(200, { "Content-Type": "text/plain" })
        res.write("first ")
        // "/gated" ends only once the client has read the first chunk: a client that buffers the body would hang.
        if (seen.url === "/gated") void Effect.runPromise(Deferred.await(firstRead)).then(() => res.end("and the rest"))
        else setTimeout(() => res.end("and the rest"), 50)
      })
      const client = yield* HttpClient.HttpClient

      const response = yield* client.get(`${url}/gated`)
      const chunks: Array<string> = []
      yield* within(
        response.stream.pipe(
          Stream.tap((chunk) =>
            Effect.sync(() => chunks.push(Buffer.from(chunk).toString("utf8"))).pipe(
              Effect.zipRight(Deferred.succeed(firstRead, undefined))
            )
          ),
          Stream.runDrain
        ),
        "the streamed body"
      )
      expect(chunks[0]).toBe("first ")
      expect(chunks.join("")).toBe("first and the rest")

      // read whole, the same kind of body waits for its end
      expect(yield* within(Effect.flatMap(client.get(`${url}/timed`), (r) => r.text), "the whole body")).toBe(
        "first and the rest"
      )
    }).pipe(Effect.provide(Pooled)))

  it.scopedLive("propagates its http.client span as traceparent and b3, under the current span; withTracerPropagation(false) sends neither", () =>
    Effect.gen(function*() {
      const { received, url } = yield* server((_, res) => res.end())
      const client = yield* HttpClient.HttpClient

      const outer = yield* Effect.withSpan(Effect.zipLeft(Effect.currentSpan, client.get(`${url}/in`)), "outer")
      yield* client.get(`${url}/root`)
      yield* HttpClient.withTracerPropagation(client, false).get(`${url}/off`)

      const [inside, root, off] = received()
      // the request's own span: same trace as the caller's, a new span id, sampled
      const traceparent = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/.exec(String(inside!.headers["traceparent"]))
      expect(traceparent).not.toBeNull()
      const [, traceId, spanId] = traceparent!
      expect(traceId).toBe(outer.traceId)
      expect(spanId).not.toBe(outer.spanId)
      // b3: trace-span-sampled-parent, the parent being the caller's span
      expect(inside!.headers["b3"]).toBe(`${outer.traceId}-${spanId}-1-${outer.spanId}`)
      // outside any span the request starts a trace of its own
      expect(root!.headers["traceparent"]).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/)
      expect(String(root!.headers["traceparent"]).slice(3, 35)).not.toBe(outer.traceId)
      expect(root!.headers["b3"]).toMatch(/^[0-9a-f]{32}-[0-9a-f]{16}-1$/)
      expect(off!.headers["traceparent"]).toBeUndefined()
      expect(off!.headers["b3"]).toBeUndefined()
    }).pipe(Effect.provide(Pooled)))

  it.scopedLive("a pool of `connections` sockets per origin: concurrent requests queue for a free socket", () =>
    Effect.gen(function*() {
      const sockets = new Set<unknown>()
      let inFlight = 0
      let maxInFlight = 0
      const { url } = yield* server((_, res, req) => {
        sockets.add(req.socket)
        maxInFlight = Math.max(maxInFlight, ++inFlight)
        setTimeout(() => {
          inFlight--
          res.end("done")
        }, 20)
      })
      const client = yield* HttpClient.HttpClient

      const bodies = yield* Effect.forEach(
        Array.from({ length: 8 }, (_, i) => i),
        (i) => Effect.flatMap(client.get(`${url}/${i}`), (r) => r.text),
        { concurrency: "unbounded" }
      )

      expect(bodies).toEqual(Array.from({ length: 8 }, () => "done"))
      expect(sockets.size).toBe(2)
      expect(maxInFlight).toBe(2)
    }).pipe(Effect.provide(NodeHttpClientPooled.layer({ connections: 2 }))))

  it.scopedLive("closing the layer closes its keep-alive connections", () =>
    Effect.gen(function*() {
      const closed = yield* Deferred.make<void>()
      const { url } = yield* server((_, res, req) => {
        req.socket.once("close", signal(closed))
        res.end("ok")
      })

      yield* Effect.scoped(
        Effect.gen(function*() {
          const client = Context.get(yield* Layer.build(NodeHttpClientPooled.layer()), HttpClient.HttpClient)
          expect(yield* Effect.flatMap(client.get(url), (r) => r.text)).toBe("ok")
          // Kept alive while the layer is open.
          expect(yield* Deferred.isDone(closed)).toBe(false)
        })
      )

      yield* within(Deferred.await(closed), "the server sees the keep-alive socket closed")
    }))
})
