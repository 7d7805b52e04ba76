/**
 * The live HTTP layers against real servers (a platform and a peer) on 127.0.0.1,
 * through Node's undici client.
 */
import { describe, expect, it } from "@effect/vitest"
import { NodeHttpClient } from "@effect/platform-node"
import { Delegations, DelegationsLayer } from "effect-a2a-delegation"
import { Context, Effect, Layer, Schedule } from "effect"
import type { Seen } from "./fixtures/servers.js"
import { json, serve } from "./fixtures/servers.js"

const TOKEN = "platform-secret"

const field = (value: unknown, ...path: ReadonlyArray<string>): unknown =>
  path.reduce<unknown>(
    (current, key) =>
      typeof current === "object" && current !== null ? (current as Record<string, unknown>)[key] : undefined,
    value
  )

/** A platform that accepts everything and serves `rows` as the delegation list. */
const platform = (peerUrl: () => string, rows: () => ReadonlyArray<unknown> = () => []) =>
  serve((seen: Seen) => {
    if (seen.headers["authorization"] !== `Bearer ${TOKEN}`) {
      return Effect.succeed(json({ error: "missing workspace auth token" }, 401))
    }
    if (seen.path.startsWith("/registry/discover/")) {
      return Effect.succeed(json({ id: "peer-1", url: peerUrl(), name: "Peer" }))
    }
    if (seen.path === "/workspaces/ws-self/delegations" && seen.method === "GET") {
      return Effect.succeed(json(rows()))
    }
    if (seen.path.endsWith("/record")) return Effect.succeed(json({ status: "recorded" }, 202))
    if (seen.path.endsWith("/update")) return Effect.succeed(json({ status: field(seen.body, "status") }))
    if (seen.path.endsWith("/notify")) {
      return Effect.succeed(
        field(seen.body, "message") === undefined ? json({ error: "message is required" }, 400) : json({ status: "sent" })
      )
    }
    return Effect.succeed(json({ error: "not found" }, 404))
  })

/**
 * The live stack over undici, with no delay between retries or polls (real I/O, no clock). Pinned to
 * v0.3: the peers here are v0.3 servers that record every request (auto would read their card first).
 */
const live = (platformUrl: string) =>
  DelegationsLayer.layer({
    workspaceId: "ws-self",
    platformUrl,
    platformToken: TOKEN,
    retrySchedule: Schedule.recurs(2),
    pollSchedule: Schedule.recurs(20),
    protocol: "0.3"
  }).pipe(Layer.provide(NodeHttpClient.layerUndici))

/** Builds the layer for the rest of the test's scope (closing it would interrupt the delegations). */
const start = <E>(layer: Layer.Layer<Delegations, E>) => Effect.map(Layer.build(layer), Context.get(Delegations))

const agentMessage = (id: unknown, text: string) => ({
  jsonrpc: "2.0",
  id,
  result: { kind: "message", role: "agent", messageId: "m-1", parts: [{ kind: "text", text }] }
})

describe("live HTTP layers over loopback", () => {
  it.scoped("completes a delegation through a real platform and a real peer", () =>
    Effect.gen(function*() {
      const peer = yield* serve((seen) => Effect.succeed(json(agentMessage(field(seen.body, "id"), "hello from peer"))))
      const plat = yield* platform(() => `${peer.url}/a2a`)
      const delegations = yield* start(live(plat.url))

      const id = yield* delegations.delegate({ workspaceId: "peer-1", task: "say hello" })
      const done = yield* delegations.awaitSettled(id)

      expect(done.status).toBe("completed")
      expect(done.result).toBe("hello from peer")
      expect(done.attempts).toBe(1)

      const [sent] = yield* peer.seen
      expect(sent!.path).toBe("/a2a")
      expect(sent!.headers["authorization"]).toBeUndefined()
      expect(sent!.headers["x-workspace-id"]).toBe("ws-self")
      expect(field(sent!.body, "method")).toBe("message/send")
      expect(field(sent!.body, "params", "message", "messageId")).toBe(id)
      expect(field(sent!.body, "params", "message", "role")).toBe("user")
      expect(sent!.headers["traceparent"]).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/)

      // update and notify run after the outcome is stored; wait for the platform to see them
      const calls = yield* Effect.repeat(plat.seen, { until: (all) => all.length >= 4 })
      expect(calls.map((c) => `${c.method} ${c.path.replace(id, ":id")}`).slice(0, 2)).toEqual([
        "POST /workspaces/ws-self/delegations/record",
        "GET /registry/discover/peer-1"
      ])
      expect(calls.map((c) => c.path.replace(id, ":id")).slice(2).sort()).toEqual([
        "/workspaces/ws-self/delegations/:id/update",
        "/workspaces/ws-self/notify"
      ])
      for (const call of calls) expect(call.headers["authorization"]).toBe(`Bearer ${TOKEN}`)
      const update = calls.find((c) => c.path.endsWith("/update"))!
      expect(update.body).toEqual({ status: "completed", error: "", response_preview: "hello from peer" })
    }))

  it.scoped("retries a refused peer and keeps the transport error", () =>
    Effect.gen(function*() {
      // A port that was just closed refuses connections.
      const closed = yield* Effect.scoped(serve(() => Effect.succeed(json({}))))
      const plat = yield* platform(() => `${closed.url}/a2a`)
      const delegations = yield* start(live(plat.url))

      const id = yield* delegations.delegate({ workspaceId: "peer-1", task: "anyone there?" })
      const done = yield* delegations.awaitSettled(id)

      expect(done.status).toBe("failed")
      expect(done.attempts).toBe(3)
      expect(done.error).toContain("refused")
      expect(done.cause?._tag).toBe("A2ATransportError")
    }))

  it.scoped("a queued delegation resolves from the platform list", () =>
    Effect.gen(function*() {
      const peer = yield* serve(() =>
        Effect.succeed(json({ queued: true, queue_id: "q-1", queue_depth: 2, message: "busy" }, 202))
      )
      let rows: ReadonlyArray<unknown> = []
      const plat = yield* platform(() => `${peer.url}/a2a`, () => rows)
      const delegations = yield* start(live(plat.url))

      const id = yield* delegations.delegate({ workspaceId: "peer-1", task: "wait your turn" })
      const queued = yield* delegations.awaitSettled(id)
      expect(queued.status).toBe("queued")
      expect(queued.queueId).toBe("q-1")
      expect(queued.queueDepth).toBe(2)
      expect((yield* peer.seen).length).toBe(1)

      expect((yield* delegations.status(id)).status).toBe("queued")
      rows = [{ delegation_id: id, type: "delegation", status: "completed", response_preview: "done later" }]
      const resolved = yield* delegations.status(id)
      expect(resolved.status).toBe("completed")
      expect(resolved.result).toBe("done later")
    }))

  it.scoped("follows a working task with tasks/get until it completes", () =>
    Effect.gen(function*() {
      let polls = 0
      const peer = yield* serve((seen) => {
        const id = field(seen.body, "id")
        if (field(seen.body, "method") === "message/send") {
          return Effect.succeed(json({ jsonrpc: "2.0", id, result: { kind: "task", id: "t-9", status: { state: "working" } } }))
        }
        polls++
        const state = polls < 3 ? "working" : "completed"
        return Effect.succeed(json({
          jsonrpc: "2.0",
          id,
          result: {
            kind: "task",
            id: "t-9",
            status: { state },
            artifacts: state === "completed" ? [{ artifactId: "a", parts: [{ kind: "text", text: "report" }] }] : []
          }
        }))
      })
      const plat = yield* platform(() => `${peer.url}/a2a`)
      const delegations = yield* start(live(plat.url))

      const id = yield* delegations.delegate({ workspaceId: "peer-1", task: "long job" })
      const done = yield* delegations.awaitSettled(id)
      expect(done.status).toBe("completed")
      expect(done.result).toBe("report")
      expect(done.taskId).toBe("t-9")
      const methods = (yield* peer.seen).map((s) => field(s.body, "method"))
      expect(methods).toEqual(["message/send", "tasks/get", "tasks/get", "tasks/get"])
    }))

  it.scoped("a platform that rejects the token fails discovery with its error text", () =>
    Effect.gen(function*() {
      const plat = yield* platform(() => "http://127.0.0.1:9/a2a")
      const delegations = yield* start(
        DelegationsLayer.layer({ workspaceId: "ws-self", platformUrl: plat.url, platformToken: "wrong" }).pipe(
          Layer.provide(NodeHttpClient.layerUndici)
        )
      )
      const id = yield* delegations.delegate({ workspaceId: "peer-1", task: "x" })
      const done = yield* delegations.awaitSettled(id)
      expect(done.status).toBe("failed")
      expect(done.error).toBe(
        "Discovery failed: HTTP 401 (missing workspace auth token; the platform rejected PLATFORM_TOKEN: check it)"
      )
      expect(done.attempts).toBe(0)
    }))
})
