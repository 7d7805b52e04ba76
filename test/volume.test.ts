/**
 * 10,000 delegations at once with the default configuration, against a platform that answers
 * slowly, over a small connection pool: requests wait for a connection far longer than the
 * mirror's 10 s bound, and no platform write is lost.
 */
import { describe, expect, it } from "@effect/vitest"
import { Delegations, DelegationsLive } from "effect-a2a-delegation"
import { NodeHttpClientPooled } from "effect-a2a-delegation/node"
import { ConfigProvider, Context, Effect, Layer, Logger, LogLevel } from "effect"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"

/** What the platform holds of each delegation: its record, and the status its last update gave it. */
interface Seen {
  readonly records: Set<string>
  readonly updates: Map<string, string>
  requests: number
}

/** A platform and a peer on one `node:http` server; every platform answer takes `latencyMillis`. */
const slowPlatform = (latencyMillis: number) =>
  Effect.acquireRelease(
    Effect.async<{ readonly url: string; readonly seen: Seen; readonly server: Http.Server }>((resume) => {
      const seen: Seen = { records: new Set(), updates: new Map(), requests: 0 }
      const server = Http.createServer((req, res) => {
        const chunks: Array<Buffer> = []
        req.on("data", (chunk: Buffer) => chunks.push(chunk))
        req.on("end", () => {
          const url = req.url ?? "/"
          const body = chunks.length === 0 ? undefined : JSON.parse(Buffer.concat(chunks).toString("utf8")) as Record<string, unknown>
          const answer = (status: number, json: unknown) => {
            const text = JSON.stringify(json)
            res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) })
            res.end(text)
          }
          if (url === "/peer") {
            return answer(200, {
              jsonrpc: "2.0",
              id: body?.["id"] ?? null,
              result: { kind: "message", role: "agent", messageId: "m", parts: [{ kind: "text", text: "ok" }] }
            })
          }
          seen.requests++
          setTimeout(() => {
            if (url.startsWith("/registry/discover/")) return answer(200, { id: "peer", url: `${base()}/peer` })
            if (url.endsWith("/delegations/record")) {
              seen.records.add(String(body?.["delegation_id"]))
              return answer(202, { status: "recorded" })
            }
            const update = /\/delegations\/([^/]+)\/update$/.exec(url)
            if (update !== null) {
              seen.updates.set(decodeURIComponent(update[1]!), String(body?.["status"]))
              return answer(200, { status: body?.["status"] })
            }
            return answer(200, { status: "sent" })
          }, latencyMillis)
        })
      })
      const base = () => `http://127.0.0.1:${(server.address() as AddressInfo).port}`
      server.keepAliveTimeout = 60_000
      server.listen(0, "127.0.0.1", () => resume(Effect.succeed({ url: base(), seen, server })))
    }),
    ({ server }) => Effect.async<void>((resume) => {
      server.closeAllConnections()
      server.close(() => resume(Effect.void))
    })
  )

describe("10,000 delegations at once, default configuration", () => {
  it.scopedLive("a slow platform behind a small pool: every row ends completed, no mirror write is lost", () =>
    Effect.gen(function*() {
      const platform = yield* slowPlatform(10)
      const config = ConfigProvider.fromMap(new Map([
        ["WORKSPACE_ID", "ws-self"],
        ["PLATFORM_URL", platform.url],
        ["A2A_PROTOCOL", "0.3"]
      ]))
      // 8 sockets for 30,000 platform requests of 10 ms each (800 a second): many wait longer than 10 s for one.
      const context = yield* Layer.build(DelegationsLive.pipe(
        Layer.provide(NodeHttpClientPooled.layer({ connections: 8 })),
        Layer.provide(Layer.setConfigProvider(config))
      ))
      const delegations = Context.get(context, Delegations)
      const ids = yield* Effect.forEach(
        Array.from({ length: 10_000 }, (_, i) => i),
        (i) => delegations.delegate({ workspaceId: "peer", task: `task ${i}` })
      )
      const done = yield* Effect.forEach(ids, (id) => delegations.await(id))
      expect(done.filter((d) => d.status !== "completed")).toHaveLength(0)
      expect(ids.filter((id) => !platform.seen.records.has(id))).toEqual([])
      expect(ids.filter((id) => platform.seen.updates.get(id) !== "completed")).toEqual([])
      const statuses = yield* Effect.forEach(ids, (id) => delegations.status(id))
      expect(statuses.filter((d) => d.platformPending === true)).toEqual([])
    }).pipe(Logger.withMinimumLogLevel(LogLevel.Error)),
    240_000
  )
})
