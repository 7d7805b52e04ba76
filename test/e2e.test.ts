/**
 * End to end over real HTTP on 127.0.0.1: a `LocalPlatform` (registry, delegation
 * rows, A2A proxy with queue-on-busy) and scripted `LocalPeer`s, driven by hosts
 * built from the package's public layers exactly as an agent builds them. Real
 * servers, real time: every latency and delay is kept short.
 */
import { HttpClientRequest } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { NodeHttpClient } from "@effect/platform-node"
import {
  A2ATransportHttp,
  AuditMemory,
  Delegations,
  DelegationsLayer,
  DiscoveryTest,
  PlatformMirrorHttp,
  RbacStatic,
  PlatformHttpClient
} from "effect-a2a-delegation"
import { NodeHttpClientPooled } from "effect-a2a-delegation/node"
import { LocalPeer } from "effect-a2a-delegation/testing"
import { Clock, Context, DateTime, Duration, Effect, Fiber, Layer, Logger, LogLevel, Option, Redacted, Schedule } from "effect"
import { captureLogs, eventually, field, items, makeWorld, makeWorldWith, SELF, workspace } from "./fixtures/e2e.js"

/** The peers, as workspace UUIDs. */
const WS_BROKEN = workspace("broken")
const WS_BUSY = workspace("busy")
const WS_FAST = workspace("fast")
const WS_QUICK = workspace("quick")
const WS_SLOW = workspace("slow")
const WS_SLOWER = workspace("slower")
const WS_V1 = workspace("v1")
const WS_WORKER = workspace("worker")

/** Audit lines and best-effort warnings are expected here; keep the test output clean. */
const quiet = <A, E, R>(effect: Effect.Effect<A, E, R>) => Logger.withMinimumLogLevel(effect, LogLevel.None)

const messageIdOf = (body: unknown) => field(body, "params", "message", "messageId")

describe("e2e: direct dispatch (discovery, then straight to the peer)", () => {
  it.scopedLive("several delegations to a fast peer complete and are mirrored with the workspace's token", () =>
    Effect.gen(function*() {
      const world = yield* makeWorld
      const fast = yield* world.peer(WS_FAST, { latency: "30 millis", reply: (task) => `answer to "${task}"` })
      const host = yield* world.host()

      const tasks = ["summarise the Q3 report", "translate the memo to French", "list open incidents"]
      const ids = yield* Effect.forEach(tasks, (task) => host.delegate({ workspaceId: WS_FAST, task }))
      const done = yield* Effect.forEach(ids, (id) => host.awaitSettled(id))

      expect(done.map((d) => d.status)).toEqual(["completed", "completed", "completed"])
      expect(done.map((d) => d.result)).toEqual(tasks.map((task) => `answer to "${task}"`))
      expect(done.map((d) => d.attempts)).toEqual([1, 1, 1])
      expect(done.map((d) => d.workspaceId)).toEqual([WS_FAST, WS_FAST, WS_FAST])

      // record, update and notify for each delegation, and one discovery (the three to one peer share it,
      // DISCOVERY_CACHE_TTL), all with this workspace's bearer token
      const requests = yield* eventually(world.platform.requests, (all) => all.length >= 10, "10 platform calls")
      const calls = requests.map((r) => `${r.method} ${r.path}`)
      const count = (call: string) => calls.filter((c) => c === call).length
      expect(requests).toHaveLength(10)
      expect(count("POST /workspaces/ws-self/delegations/record")).toBe(3)
      expect(count(`GET /registry/discover/${WS_FAST}`)).toBe(1)
      for (const id of ids) expect(count(`POST /workspaces/ws-self/delegations/${id}/update`)).toBe(1)
      expect(count("POST /workspaces/ws-self/notify")).toBe(3)
      for (const request of requests) expect(request.headers["authorization"]).toBe(`Bearer ${world.selfToken}`)
      for (const request of requests.filter((r) => r.path.startsWith("/registry/discover/"))) {
        expect(request.headers["x-workspace-id"]).toBe(SELF)
      }

      // the peer got one message/send per delegation, never the platform's bearer
      const sent = yield* fast.requests
      expect(sent.map((r) => r.method)).toEqual(["message/send", "message/send", "message/send"])
      expect(sent.map((r) => messageIdOf(r.body)).sort()).toEqual([...ids].sort())
      for (const request of sent) {
        expect(request.headers["authorization"]).toBeUndefined()
        expect(request.headers["x-workspace-id"]).toBe(SELF)
      }

      // the platform's rows and its list show them completed
      const rows = yield* world.platform.rows
      for (const [i, id] of ids.entries()) {
        const own = rows.filter((row) => row.delegationId === id)
        // the result row the platform's update writes has no target_id (contract 1.5)
        expect(own.map((row) => [row.method, row.status, row.targetId])).toEqual([
          ["delegate", "completed", WS_FAST],
          ["delegate_result", "completed", ""]
        ])
        expect(own[1]!.responseText).toBe(`answer to "${tasks[i]}"`)
      }
      const list = yield* world.call("GET", `/workspaces/${SELF}/delegations`, { token: world.selfToken })
      expect(list.status).toBe(200)
      for (const [i, id] of ids.entries()) {
        const own = items(list.body).filter((row) => field(row, "delegation_id") === id)
        expect(own).toHaveLength(2)
        for (const row of own) expect(field(row, "status")).toBe("completed")
        expect(own.map((row) => field(row, "response_preview"))).toContain(`answer to "${tasks[i]}"`)
      }

      const notifications = yield* world.platform.notifications
      expect(notifications.map((n) => field(n.body, "message")).sort()).toEqual(
        ids.map((id) => `Delegation ${id} to ${WS_FAST} completed.`).sort()
      )
      expect(yield* host.running).toBe(0)
    }).pipe(quiet))
})

describe("e2e: the platform's rate limit", () => {
  it.scopedLive("by default the host follows the platform's own limit: nothing refused, every delegation completes and is mirrored", () =>
    Effect.gen(function*() {
      // 8 requests a second, where the platform's default is 600 a minute: 4 delegations make 16 calls at once.
      const world = yield* makeWorldWith({ rateLimit: { requests: 8, per: "1 second" } })
      const fast = yield* world.peer(WS_FAST, { reply: (task) => `answer to "${task}"` })
      // A discovery per delegation (no cache), so that the four make four calls each.
      const host = yield* world.host({ discoveryCacheTtl: 0 })

      const tasks = ["one", "two", "three", "four"]
      const ids = yield* Effect.forEach(tasks, (task) => host.delegate({ workspaceId: WS_FAST, task }))
      const done = yield* Effect.forEach(ids, (id) => host.awaitSettled(id))
      expect(done.map((d) => d.status)).toEqual(["completed", "completed", "completed", "completed"])
      expect(done.map((d) => d.attempts)).toEqual([1, 1, 1, 1])
      expect((yield* fast.requests).length).toBe(4)

      // every row reached the platform; the host learned the limit from the answers and waited for places
      const rows = yield* eventually(world.platform.rows, (all) => all.length === 8, "a record and an update row each")
      for (const id of ids) {
        expect(rows.filter((row) => row.delegationId === id).map((row) => row.status)).toEqual(["completed", "completed"])
      }
      expect((yield* eventually(world.platform.notifications, (all) => all.length === 4, "4 notifications")).length).toBe(4)
      const requests = yield* world.platform.requests
      expect(requests.filter((r) => r.status === 429)).toEqual([])
      expect(requests.length).toBe(16)
    }).pipe(quiet))

  it.scopedLive("PLATFORM_RATE_LIMIT paces the host's platform requests: none is refused, every delegation completes", () =>
    Effect.gen(function*() {
      const world = yield* makeWorldWith({ rateLimit: { requests: 8, per: "1 second" } })
      const fast = yield* world.peer(WS_FAST, { reply: (task) => `answer to "${task}"` })
      // 7 a second, within the platform's 8: the host waits before the platform would refuse.
      // A discovery per delegation (no cache), so that the four make four calls each.
      const host = yield* world.host({ platformRateLimit: { limit: 7, interval: "1 second" }, discoveryCacheTtl: 0 })

      const started = yield* Clock.currentTimeMillis
      const ids = yield* Effect.forEach(["one", "two", "three", "four"], (task) => host.delegate({ workspaceId: WS_FAST, task }))
      const done = yield* Effect.forEach(ids, (id) => host.awaitSettled(id))
      expect(done.map((d) => d.status)).toEqual(["completed", "completed", "completed", "completed"])
      yield* eventually(world.platform.notifications, (all) => all.length === 4, "4 notifications")
      // 16 calls, each sent once: 7 at once, then one every 1/7 s
      expect((yield* world.platform.requests).length).toBe(16)
      expect((yield* Clock.currentTimeMillis) - started).toBeGreaterThanOrEqual(1000)
      expect((yield* fast.requests).length).toBe(4)
    }).pipe(quiet))
})

describe("e2e: proxy dispatch (through the platform's A2A proxy)", () => {
  it.scopedLive("a busy peer that runs its own session queue gets the proxy's 503 busy: failed Busy, sent once, nothing queued", () =>
    Effect.gen(function*() {
      const world = yield* makeWorld
      const busy = yield* world.peer(WS_BUSY, { latency: "300 millis", reply: (task) => `report on "${task}"` }, 1)
      // The peer declares native_session: the platform answers 503 busy for it instead of queueing.
      yield* world.platform.register({ id: WS_BUSY, url: busy.url, capacity: 1, nativeSession: true })
      const host = yield* world.hostFromEnv({
        PLATFORM_URL: world.platform.url,
        WORKSPACE_ID: SELF,
        PLATFORM_TOKEN: world.selfToken,
        DELEGATION_DISPATCH: "proxy",
        A2A_PROTOCOL: "0.3",
        DELEGATION_RETRY_ATTEMPTS: "3",
        DELEGATION_RETRY_DELAY: "0.05",
        DELEGATION_TIMEOUT: "5"
      })

      const first = yield* host.delegate({ workspaceId: WS_BUSY, task: "audit the ledger" })
      yield* eventually(busy.active, (active) => active === 1, "the first request to reach the peer")
      const second = yield* host.delegate({ workspaceId: WS_BUSY, task: "audit the payroll" })

      const refused = yield* host.awaitSettled(second)
      expect(refused.status).toBe("failed")
      expect(refused.attempts).toBe(1)
      expect(refused.cause).toMatchObject({ _tag: "A2AResponseError", reason: "Busy", status: 503 })
      expect(refused.error).toContain("workspace agent busy")
      expect(yield* world.platform.queueDepth(WS_BUSY)).toBe(0)

      expect((yield* host.awaitSettled(first)).status).toBe("completed")
      // the peer saw the first task only: the busy answer was not re-sent
      const sent = yield* busy.requests
      expect(sent).toHaveLength(1)
      expect(messageIdOf(sent[0]!.body)).toBe(first)
    }).pipe(quiet))

  it.scopedLive("A2A_VIA_PLATFORM_PROXY: a busy peer's overflow is queued once, delivered by the drain, and never resolved: it fails at DELEGATION_QUEUED_TIMEOUT", () =>
    Effect.gen(function*() {
      const world = yield* makeWorld
      const busy = yield* world.peer(WS_BUSY, { latency: "300 millis", reply: (task) => `report on "${task}"` }, 1)
      const host = yield* world.hostFromEnv({
        PLATFORM_URL: world.platform.url,
        WORKSPACE_ID: SELF,
        PLATFORM_TOKEN: world.selfToken,
        A2A_VIA_PLATFORM_PROXY: "true",
        DELEGATION_RETRY_ATTEMPTS: "3",
        DELEGATION_RETRY_DELAY: "0.05",
        DELEGATION_TIMEOUT: "5",
        DELEGATION_QUEUED_TIMEOUT: "3",
        DELEGATION_RECONCILE_INTERVAL: "0.05",
        DELEGATION_RECONCILE_MAX_INTERVAL: "0.2"
      })

      const first = yield* host.delegate({ workspaceId: WS_BUSY, task: "audit the ledger" })
      // the peer is busy with the first before the second arrives at the proxy
      yield* eventually(busy.active, (active) => active === 1, "the first request to reach the peer")
      const second = yield* host.delegate({ workspaceId: WS_BUSY, task: "audit the payroll" })

      const queued = yield* host.awaitSettled(second)
      expect(queued.status).toBe("queued")
      expect(queued.dispatch).toBe("proxy")
      // the platform's ids are UUIDs (v4), as the real platform's are
      expect(queued.queueId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
      expect(queued.queueDepth).toBe(1)
      expect(queued.queueMessage).toContain("request queued")
      expect(queued.attempts).toBe(1)
      expect(queued.result).toBeUndefined()

      const firstDone = yield* host.awaitSettled(first)
      expect(firstDone.status).toBe("completed")
      expect(firstDone.result).toBe(`report on "audit the ledger"`)
      expect(firstDone.attempts).toBe(1)

      // the peer's heartbeat drains the queue: the second reaches the peer, which answers it...
      yield* world.platform.heartbeat(WS_BUSY)
      yield* eventually(busy.requests, (sent) => sent.length === 2, "the drain to deliver the second")
      yield* eventually(world.platform.queue, (items) => items.every((item) => item.status === "completed"), "the drain")
      // ...but nothing carries the answer back: the proxy wrote no delegate_result row for the stitch to update
      expect((yield* world.platform.rows).filter((row) => row.delegationId === second).map((row) => row.method)).toEqual([
        "delegate"
      ])
      expect((yield* host.status(second)).status).toBe("queued")

      // so the deadline ends it, typed, mirrored and notified, without anyone polling
      const failed = yield* host.await(second).pipe(Effect.timeout("8 seconds"))
      expect(failed.status).toBe("failed")
      expect(failed.cause).toMatchObject({ _tag: "DelegationUnresolved", reason: "queued-timeout", seconds: 3 })
      expect(failed.error).toBe(
        "The queued reply never arrived: still queued on the platform after 3s (DELEGATION_QUEUED_TIMEOUT)"
      )
      expect(failed.attempts).toBe(1)

      // exactly one proxy POST per delegation, with the caller's bearer and X-Workspace-ID; no discovery
      const requests = yield* world.platform.requests
      const proxied = requests.filter((r) => r.method === "POST" && r.path === `/workspaces/${WS_BUSY}/a2a`)
      expect(proxied).toHaveLength(2)
      for (const request of proxied) {
        expect(request.headers["authorization"]).toBe(`Bearer ${world.selfToken}`)
        expect(request.headers["x-workspace-id"]).toBe(SELF)
      }
      expect(requests.filter((r) => r.path.startsWith("/registry/discover/"))).toEqual([])

      // the peer saw each delegation once (the second from the drain); the proxy forwards only the body
      const sent = yield* busy.requests
      expect(sent.map((r) => messageIdOf(r.body))).toEqual([first, second])
      for (const request of sent) {
        expect(request.headers["authorization"]).toBeUndefined()
        expect(request.headers["x-workspace-id"]).toBeUndefined()
        expect(request.headers["traceparent"]).toBeUndefined()
      }
      expect(yield* world.platform.queueDepth(WS_BUSY)).toBe(0)

      const rows = (yield* world.platform.rows).filter((row) => row.delegationId === second)
      expect(rows.map((row) => [row.method, row.status, row.error])).toEqual([["delegate", "failed", failed.error]])
      const notifications = (yield* world.platform.notifications).map((n) => field(n.body, "message"))
      expect(notifications).toContain(`Delegation ${first} to ${WS_BUSY} completed.`)
      expect(notifications).toContain(`Queued delegation ${second} to ${WS_BUSY} failed: ${failed.error}`)
    }).pipe(quiet))
})

// Platform dispatch: the platform's /delegate takes only UUID targets.
const FAST = "0a0f5c1e-51a4-4c6e-9d3b-1f0a00000001"
const BUSY = "0a0f5c1e-51a4-4c6e-9d3b-1f0a00000002"
const GONE = "0a0f5c1e-51a4-4c6e-9d3b-1f0a00000003"
const DROP = "0a0f5c1e-51a4-4c6e-9d3b-1f0a00000004"

/** A host in platform dispatch whose reconciler looks often. */
const platformHost = {
  dispatch: "platform",
  reconcileInterval: "50 millis",
  reconcileMaxInterval: "200 millis"
} satisfies Partial<DelegationsLayer.Options>

describe("e2e: platform dispatch (POST /delegate, followed in the platform's list)", () => {
  it.scopedLive("completes: one POST /delegate keyed by the delegation id; the result is the platform's 300-byte preview", () =>
    Effect.gen(function*() {
      const world = yield* makeWorldWith({ delegateRetryDelay: "100 millis" })
      const long = "é".repeat(400)
      const fast = yield* world.peer(FAST, { reply: (task) => `${task}: ${long}` })
      const host = yield* world.host(platformHost)

      const id = yield* host.delegate({ workspaceId: FAST, task: "summarise" })
      const accepted = yield* host.awaitSettled(id)
      expect(accepted.status).toBe("in_progress")
      expect(accepted.dispatch).toBe("platform")
      expect(accepted.platformDelegationId).toMatch(/^[0-9a-f-]{36}$/)
      expect(accepted.attempts).toBe(1)

      const done = yield* host.await(id).pipe(Effect.timeout("5 seconds"))
      expect(done.status).toBe("completed")
      expect(done.resultIsPreview).toBe(true)
      // 300 bytes of the first text part, then "..."; the 2-byte "é" at the cut becomes U+FFFD, as in Go
      const full = `summarise: ${long}`
      expect(done.result).toBe(`${full.slice(0, 11)}${"é".repeat(144)}\uFFFD...`)
      expect(done.platformDelegationId).toBe(accepted.platformDelegationId)

      // the platform sent it: no discovery, no record, no proxy POST from the host
      const calls = (yield* world.platform.requests).map((r) => `${r.method} ${r.path}`)
      expect(calls.filter((c) => c === `POST /workspaces/${SELF}/delegate`)).toHaveLength(1)
      expect(calls.filter((c) => c.startsWith("GET /registry/discover") || c.includes("/record") || c.endsWith("/a2a")))
        .toEqual([])
      // the platform's own A2A body: v0.3 message/send, messageId = its delegation id, legacy `type` part
      const sent = yield* fast.requests
      expect(sent).toHaveLength(1)
      expect(field(sent[0]!.body, "jsonrpc")).toBe("2.0")
      expect(field(sent[0]!.body, "params", "message", "messageId")).toBe(done.platformDelegationId)
      expect(field(sent[0]!.body, "params", "message", "metadata", "delegation_id")).toBe(done.platformDelegationId)
      expect(field(sent[0]!.body, "params", "message", "parts")).toEqual([{ type: "text", text: "summarise" }])
      expect(sent[0]!.headers["authorization"]).toBeUndefined()

      const rows = (yield* world.platform.rows).filter((row) => row.delegationId === done.platformDelegationId)
      expect(rows.map((row) => [row.method, row.status, row.idempotencyKey])).toEqual([
        ["delegate", "completed", id],
        ["delegate_result", "completed", undefined]
      ])
      const notifications = (yield* world.platform.notifications).map((n) => field(n.body, "message"))
      expect(notifications).toEqual([`Delegation ${id} to ${FAST} completed.`])
    }).pipe(quiet))

  it.scopedLive("queues behind a busy peer and completes after the drain, with nobody polling", () =>
    Effect.gen(function*() {
      const world = yield* makeWorldWith({ delegateRetryDelay: "100 millis" })
      const busy = yield* world.peer(BUSY, { latency: "300 millis", reply: (task) => `report on "${task}"` }, 1)
      const host = yield* world.host(platformHost)

      const first = yield* host.delegate({ workspaceId: BUSY, task: "audit the ledger" })
      yield* eventually(busy.active, (active) => active === 1, "the first request to reach the peer")
      const second = yield* host.delegate({ workspaceId: BUSY, task: "audit the payroll" })

      // the platform queued it; the reconciler sees that in the list
      const queued = yield* eventually(host.status(second), (d) => d.status === "queued", "the platform to queue it")
      expect(queued.dispatch).toBe("platform")
      expect((yield* host.await(first)).result).toBe(`report on "audit the ledger"`)

      // the peer's heartbeat drains the queue and the stitch completes the platform's result row
      yield* world.platform.heartbeat(BUSY)
      yield* eventually(
        world.platform.rows,
        (rows) => rows.some((row) => row.method === "delegate_result" && row.delegationId === queued.platformDelegationId &&
          row.status === "completed"),
        "the stitch"
      )
      // the reconciler alone brings it into the store: reading it afterwards asks the platform nothing
      yield* Effect.sleep("600 millis")
      const lists = (yield* world.platform.requests).filter((r) => r.method === "GET").length
      const done = yield* host.status(second)
      expect((yield* world.platform.requests).filter((r) => r.method === "GET").length).toBe(lists)
      expect(done.status).toBe("completed")
      expect(done.result).toBe(`report on "audit the payroll"`)
      expect(done.resultIsPreview).toBe(true)

      // the platform's rows: the delegate row stays queued, the result row is completed (contract 1.9)
      const rows = (yield* world.platform.rows).filter((row) => row.delegationId === done.platformDelegationId)
      expect(rows.map((row) => [row.method, row.status])).toEqual([["delegate", "queued"], ["delegate_result", "completed"]])
      expect((yield* busy.requests).map((r) => messageIdOf(r.body))).toHaveLength(2)
      const notifications = (yield* world.platform.notifications).map((n) => field(n.body, "message"))
      expect(notifications).toContain(`Delegation ${second} to ${BUSY} completed.`)
    }).pipe(quiet))

  it.scopedLive("a queued delegation whose drained reply is a JSON-RPC error: the platform calls it completed, the delegation fails", () =>
    Effect.gen(function*() {
      const world = yield* makeWorldWith({ delegateRetryDelay: "100 millis" })
      const busy = yield* world.peer(BUSY, {}, 1)
      yield* busy.setBehaviour((call) =>
        call === 0 ? { latency: "300 millis" } : { rpcError: { code: -32601, message: "Method not found" } }
      )
      const host = yield* world.host(platformHost)

      const first = yield* host.delegate({ workspaceId: BUSY, task: "first" })
      yield* eventually(busy.active, (active) => active === 1, "the first request to reach the peer")
      const second = yield* host.delegate({ workspaceId: BUSY, task: "second" })
      const queued = yield* eventually(host.status(second), (d) => d.status === "queued", "the platform to queue it")
      expect((yield* host.await(first)).result).toBe("done: first")

      yield* world.platform.heartbeat(BUSY)
      const failed = yield* host.await(second).pipe(Effect.timeout("5 seconds"))
      expect(failed.status).toBe("failed")
      expect(failed.attempts).toBe(1)
      expect(failed.error).toBe("Platform reported the delegation as failed: JSON-RPC error -32601: Method not found")
      expect(failed.cause?._tag).toBe("PeerTaskFailed")
      // the platform's own rows say completed, with the raw JSON-RPC error as the text (contract 6.2, 25)
      const rows = (yield* world.platform.rows).filter((row) => row.delegationId === queued.platformDelegationId)
      expect(rows.map((row) => [row.method, row.status])).toEqual([["delegate", "queued"], ["delegate_result", "completed"]])
      expect(field(JSON.parse(rows[1]?.responseText ?? "{}"), "error", "code")).toBe(-32601)
      const notifications = (yield* world.platform.notifications).map((n) => field(n.body, "message"))
      expect(notifications).toContain(`Delegation ${second} to ${BUSY} failed: ${failed.error}`)
    }).pipe(quiet))

  it.scopedLive("fails with the platform's error: an offline peer at once, an unreachable one after the platform's one retry", () =>
    Effect.gen(function*() {
      const world = yield* makeWorldWith({ delegateRetryDelay: "100 millis" })
      yield* world.peer(GONE, {})
      yield* world.platform.setStatus(GONE, "offline")
      const dropping = yield* world.peer(DROP, { drop: true })
      const host = yield* world.host(platformHost)

      const offline = yield* host.delegate({ workspaceId: GONE, task: "hello?" })
      const unreachable = yield* host.delegate({ workspaceId: DROP, task: "hello?" })
      const [a, b] = yield* Effect.all([host.await(offline), host.await(unreachable)]).pipe(Effect.timeout("5 seconds"))

      expect(a.status).toBe("failed")
      expect(a.error).toBe("Platform reported the delegation as failed: workspace has no URL")
      expect(a.cause).toMatchObject({ _tag: "PeerTaskFailed", reason: "platform" })
      expect(b.status).toBe("failed")
      expect(b.error).toBe("Platform reported the delegation as failed: failed to reach workspace agent")
      // a 502 is retried once by the platform
      expect(yield* dropping.requests).toHaveLength(2)
    }).pipe(quiet))

  it.scopedLive("an idempotent re-post never dispatches twice; a failed key starts a new delegation", () =>
    Effect.gen(function*() {
      const world = yield* makeWorldWith({ delegateRetryDelay: "100 millis" })
      const fast = yield* world.peer(FAST, {})
      const mirror = yield* PlatformMirrorHttp.make().pipe(
        Effect.provide(PlatformHttpClient.layer({
          platformUrl: world.platform.url,
          workspaceId: SELF,
          platformToken: Option.some(Redacted.make(world.selfToken)),
          orgId: Option.none()
        })),
        Effect.provide(world.http)
      )

      const once = yield* mirror.delegate({ targetId: FAST, task: "only once", idempotencyKey: "key-1" })
      const again = yield* mirror.delegate({ targetId: FAST, task: "only once", idempotencyKey: "key-1" })
      expect(once.idempotentHit).toBe(false)
      expect(once.status).toBe("delegated")
      expect(again.idempotentHit).toBe(true)
      expect(again.delegationId).toBe(once.delegationId)
      yield* eventually(fast.requests, (sent) => sent.length === 1, "the one dispatch")
      yield* Effect.sleep("200 millis")
      expect(yield* fast.requests).toHaveLength(1)

      // a key whose delegation failed is freed: the re-post dispatches anew
      yield* world.platform.setStatus(FAST, "offline")
      const failing = yield* mirror.delegate({ targetId: FAST, task: "retry me", idempotencyKey: "key-2" })
      yield* eventually(world.platform.rows, (rows) =>
        rows.some((row) => row.delegationId === failing.delegationId && row.status === "failed"), "the failure")
      yield* world.platform.setStatus(FAST, "online")
      const fresh = yield* mirror.delegate({ targetId: FAST, task: "retry me", idempotencyKey: "key-2" })
      expect(fresh.idempotentHit).toBe(false)
      expect(fresh.delegationId).not.toBe(failing.delegationId)
      yield* eventually(fast.requests, (sent) => sent.length === 2, "the new dispatch")

      // the platform's 400s
      const bad = (body: unknown) => world.call("POST", `/workspaces/${SELF}/delegate`, { token: world.selfToken, body })
      expect(yield* bad({ target_id: "ws-fast", task: "t" })).toEqual({
        status: 400,
        body: { error: "target_id must be a valid UUID" }
      })
      expect(yield* bad({ target_id: FAST })).toEqual({ status: 400, body: { error: "invalid delegation request" } })
    }).pipe(quiet))

  it.scopedLive("a restarted host tracks a queued platform delegation again and awaits it to completion", () =>
    Effect.gen(function*() {
      const world = yield* makeWorldWith({ delegateRetryDelay: "100 millis" })
      const busy = yield* world.peer(BUSY, { latency: "300 millis", reply: (task) => `report on "${task}"` }, 1)

      // the first host queues a delegation behind a busy peer, then stops
      const platformId = yield* Effect.scoped(Effect.gen(function*() {
        const before = yield* world.host(platformHost)
        yield* before.delegate({ workspaceId: BUSY, task: "first" })
        yield* eventually(busy.active, (active) => active === 1, "the first request to reach the peer")
        const second = yield* before.delegate({ workspaceId: BUSY, task: "second" })
        const queued = yield* eventually(before.status(second), (d) => d.status === "queued", "the platform to queue it")
        return queued.platformDelegationId ?? ""
      }))
      expect(platformId).not.toBe("")

      // the new host finds it in the platform's list, under the platform's id
      const after = yield* world.host(platformHost)
      const found = yield* after.status(platformId)
      expect(found.status).toBe("queued")
      expect(found.dispatch).toBe("platform")
      expect(found.workspaceId).toBe(BUSY)

      // The peer's own count reaches 0 a moment before the proxy lets go of the request, and a heartbeat
      // drains nothing while the proxy still counts the peer busy: beat until the queue has drained.
      yield* eventually(busy.active, (active) => active === 0, "the first to finish")
      yield* eventually(
        Effect.zipRight(world.platform.heartbeat(BUSY), world.platform.queueDepth(BUSY)),
        (depth) => depth === 0,
        "a heartbeat to drain the queue"
      )
      const done = yield* after.await(platformId).pipe(Effect.timeout("15 seconds"))
      expect(done.status).toBe("completed")
      expect(done.result).toBe(`report on "second"`)
    }).pipe(quiet))
})

describe("e2e: failures", () => {
  it.scopedLive("a broken peer fails after 3 attempts, directly (connection closed) and through the proxy (502)", () =>
    Effect.gen(function*() {
      const world = yield* makeWorld
      const broken = yield* world.peer(WS_BROKEN, { drop: true })
      const direct = yield* world.host()
      const proxied = yield* world.host({ viaPlatformProxy: true })

      const a = yield* direct.delegate({ workspaceId: WS_BROKEN, task: "rebuild the index" })
      const b = yield* proxied.delegate({ workspaceId: WS_BROKEN, task: "rebuild the index again" })
      const [viaDirect, viaProxy] = yield* Effect.all([direct.awaitSettled(a), proxied.awaitSettled(b)])

      expect(viaDirect.status).toBe("failed")
      expect(viaDirect.attempts).toBe(3)
      expect(viaDirect.error).toMatch(/^Transport error: connection reset \(.+\)$/)
      const directCause = viaDirect.cause
      expect(directCause?._tag).toBe("A2ATransportError")
      if (directCause?._tag === "A2ATransportError") {
        expect(directCause.reason).toBe("ConnectionReset")
        expect(directCause.url).toBe(broken.url)
      }

      expect(viaProxy.status).toBe("failed")
      expect(viaProxy.attempts).toBe(3)
      expect(viaProxy.error).toBe("Transport error: HTTP 502 (failed to reach workspace agent)")
      const proxyCause = viaProxy.cause
      expect(proxyCause?._tag).toBe("A2ATransportError")
      if (proxyCause?._tag === "A2ATransportError") {
        expect(proxyCause.reason).toBe("Status")
        expect(proxyCause.status).toBe(502)
        expect(proxyCause.url).toBe(`${world.platform.url}/workspaces/${WS_BROKEN}/a2a`)
      }

      // 3 direct POSTs plus 3 forwarded by the proxy
      expect((yield* broken.requests).map((r) => messageIdOf(r.body)).sort()).toEqual([a, a, a, b, b, b].sort())
      const proxyPosts = (yield* world.platform.requests).filter((r) => r.path === `/workspaces/${WS_BROKEN}/a2a`)
      expect(proxyPosts).toHaveLength(3)

      const rows = yield* world.platform.rows
      for (const [id, error] of [[a, viaDirect.error], [b, viaProxy.error]] as const) {
        const own = rows.filter((row) => row.delegationId === id)
        expect(own.map((row) => [row.method, row.status, row.error])).toEqual([["delegate", "failed", error]])
      }
    }).pipe(quiet))

  it.scopedLive("RBAC denial and invalid input store nothing and send nothing", () =>
    Effect.gen(function*() {
      const world = yield* makeWorld
      const fast = yield* world.peer(WS_FAST, {})
      const intern = yield* world.host({ roles: ["read-only"] })
      const host = yield* world.host()

      const denied = yield* Effect.flip(intern.delegate({ workspaceId: WS_FAST, task: "anything at all" }))
      expect(denied._tag).toBe("AccessDenied")
      expect(denied.message).toBe("RBAC: no 'delegate' permission. Roles: [read-only]")

      const invalid = yield* Effect.forEach([
        { workspaceId: "ws busy; rm -rf /", task: "whatever" },
        { workspaceId: WS_FAST, task: "   " },
        { workspaceId: SELF, task: "talk to myself" },
        { workspaceId: "", task: "nobody" }
      ], (request) => Effect.flip(host.delegate(request)))
      expect(invalid.map((e) => e._tag)).toEqual(Array(4).fill("InvalidDelegation"))
      expect(invalid.map((e) => e._tag === "InvalidDelegation" ? `${e.field}/${e.rule}` : e._tag)).toEqual([
        "workspaceId/pattern",
        "task/required",
        "workspaceId/self_delegation",
        "workspaceId/required"
      ])

      // a moment for anything that might have been started in the background
      yield* Effect.sleep("50 millis")
      expect(yield* intern.list).toEqual([])
      expect(yield* host.list).toEqual([])
      expect(yield* intern.running).toBe(0)
      expect(yield* host.running).toBe(0)
      expect(yield* world.platform.requests).toEqual([])
      expect(yield* world.platform.rows).toEqual([])
      expect(yield* fast.requests).toEqual([])
    }).pipe(quiet))

  it.scopedLive("a peer slower than the timeout: each request times out, is retried, and the delegation fails", () =>
    Effect.gen(function*() {
      const world = yield* makeWorld
      const slow = yield* world.peer(WS_SLOW, { latency: "500 millis" })
      const host = yield* world.host({ timeout: "200 millis" })

      const id = yield* host.delegate({ workspaceId: WS_SLOW, task: "take your time" })
      const done = yield* host.awaitSettled(id)
      expect(done.status).toBe("failed")
      expect(done.attempts).toBe(3)
      expect(done.error).toBe("Transport error: request timed out after 200ms")
      const cause = done.cause
      expect(cause?._tag).toBe("A2ATransportError")
      if (cause?._tag === "A2ATransportError") expect(cause.reason).toBe("Timeout")
      expect((yield* slow.requests).map((r) => messageIdOf(r.body))).toEqual([id, id, id])
    }).pipe(quiet))

  it.scopedLive("the pooled client: a peer slower than the bound fails at the bound with a Timeout transport error, short or long bound", () =>
    Effect.gen(function*() {
      const world = yield* makeWorld
      const slow = yield* world.peer(WS_SLOW, { latency: "500 millis" })
      const host = yield* world.host({ timeout: "200 millis" }, NodeHttpClientPooled.layer())

      const id = yield* host.delegate({ workspaceId: WS_SLOW, task: "take your time" })
      const done = yield* host.awaitSettled(id)
      expect(done.status).toBe("failed")
      expect(done.attempts).toBe(3)
      expect(done.error).toBe("Transport error: request timed out after 200ms")
      expect((yield* slow.requests).length).toBe(3)

      // a bound of 2 s (a deadline timer inside the pooled client) fails the same way
      const slower = yield* world.peer(WS_SLOWER, { latency: "4 seconds" })
      const bounded = yield* world.host({ timeout: "2 seconds", retryAttempts: 1 }, NodeHttpClientPooled.layer())
      const late = yield* bounded.awaitSettled(yield* bounded.delegate({ workspaceId: WS_SLOWER, task: "too slow" }))
      expect(late.status).toBe("failed")
      expect(late.error).toBe("Transport error: request timed out after 2s")
      const cause = late.cause
      if (cause?._tag === "A2ATransportError") expect(cause.reason).toBe("Timeout")
      else expect.fail(`expected an A2ATransportError, got ${cause?._tag}`)
      const took = Duration.toMillis(DateTime.distanceDuration(late.createdAt, late.updatedAt))
      expect(took).toBeGreaterThanOrEqual(1_400)
      expect(took).toBeLessThan(3_500)
      expect((yield* slower.requests).length).toBe(1)

      // and a fast answer within the bound goes through the same client
      const fast = yield* world.peer(WS_QUICK, { latency: "20 millis" })
      const ok = yield* host.awaitSettled(yield* host.delegate({ workspaceId: WS_QUICK, task: "quick" }))
      expect(ok.status).toBe("completed")
      expect((yield* fast.requests).length).toBe(1)
    }).pipe(quiet))

  it.scopedLive("a Task result is followed with tasks/get until completed", () =>
    Effect.gen(function*() {
      const world = yield* makeWorld
      const worker = yield* world.peer(WS_WORKER, {
        result: "task",
        latency: "300 millis",
        reply: (task) => `finished: ${task}`
      })
      const host = yield* world.host()

      const id = yield* host.delegate({ workspaceId: WS_WORKER, task: "long job" })
      const done = yield* host.awaitSettled(id)
      expect(done.status).toBe("completed")
      expect(done.result).toBe("finished: long job")
      expect(done.taskId).toBe("task-1")
      expect(done.attempts).toBe(1)

      const methods = (yield* worker.requests).map((r) => r.method)
      expect(methods[0]).toBe("message/send")
      expect(methods.slice(1).length).toBeGreaterThanOrEqual(2)
      expect(new Set(methods.slice(1))).toEqual(new Set(["tasks/get"]))
      for (const request of yield* worker.requests) expect(request.headers["authorization"]).toBeUndefined()
    }).pipe(quiet))

  it.scopedLive("a Task that outlasts DELEGATION_TIMEOUT fails with DelegationTimeout", () =>
    Effect.gen(function*() {
      const world = yield* makeWorld
      const worker = yield* world.peer(WS_WORKER, { result: "task", latency: "2 seconds" })
      const host = yield* world.host({ timeout: "200 millis" })

      const id = yield* host.delegate({ workspaceId: WS_WORKER, task: "never ends in time" })
      const done = yield* host.awaitSettled(id)
      expect(done.status).toBe("failed")
      expect(done.attempts).toBe(1)
      expect(done.taskId).toBe("task-1")
      expect(done.error).toBe("Peer task task-1 still working after 0.2s (DELEGATION_TIMEOUT)")
      const cause = done.cause
      expect(cause?._tag).toBe("DelegationTimeout")
      if (cause?._tag === "DelegationTimeout") {
        expect(cause.taskId).toBe("task-1")
        expect(cause.lastState).toBe("working")
      }
      expect((yield* worker.requests)[0]?.method).toBe("message/send")
    }).pipe(quiet))

  it.scopedLive("a JSON-RPC error fails once, without retry, and points at A2A v1.0", () =>
    Effect.gen(function*() {
      const world = yield* makeWorld
      const v1 = yield* world.peer(WS_V1, { rpcError: { code: -32601, message: "Method not found" } })
      const host = yield* world.host()

      const id = yield* host.delegate({ workspaceId: WS_V1, task: "hello?" })
      const done = yield* host.awaitSettled(id)
      expect(done.status).toBe("failed")
      expect(done.attempts).toBe(1)
      expect(done.error).toContain("JSON-RPC error -32601: Method not found")
      expect(done.error).toContain("v1.0")
      const cause = done.cause
      expect(cause?._tag).toBe("JsonRpcError")
      if (cause?._tag === "JsonRpcError") expect(cause.code).toBe(-32601)
      expect(yield* v1.requests).toHaveLength(1)
    }).pipe(quiet))
})

describe("e2e: a platform that is down", () => {
  it.scopedLive("the delegation still completes; record, update and notify failures are only logged", () =>
    Effect.gen(function*() {
      const fast = yield* LocalPeer.make({ name: WS_FAST, behaviour: { reply: (task) => `answer to "${task}"` } })
      // a port that was just closed refuses connections
      const closed = yield* Effect.scoped(LocalPeer.make({ name: "gone" }))
      const platformUrl = new URL(closed.url).origin

      const context = yield* Layer.build(
        DelegationsLayer.layerCore({
          workspaceId: SELF,
          history: 100,
          timeout: Duration.seconds(2),
          mirrorTimeout: Duration.millis(500),
          retrySchedule: DelegationsLayer.linearRetry(3, "50 millis"),
          pollSchedule: Schedule.spaced("50 millis")
        }).pipe(
          Layer.provideMerge(Layer.mergeAll(
            A2ATransportHttp.layer({ workspaceId: SELF, timeout: "2 seconds" }),
            PlatformMirrorHttp.layer({ timeout: "500 millis" }).pipe(Layer.provide(PlatformHttpClient.layer({
              platformUrl,
              workspaceId: SELF,
              platformToken: Option.some(Redacted.make("platform-secret")),
              orgId: Option.none()
            }))),
            DiscoveryTest.layer({ [WS_FAST]: fast.url }),
            AuditMemory.layer({ workspaceId: SELF }),
            RbacStatic.layer({ roles: ["operator"] })
          )),
          Layer.provide(NodeHttpClient.layerUndici)
        )
      )
      const host = Context.get(context, Delegations)

      const logs = captureLogs()
      const id = yield* host.delegate({ workspaceId: WS_FAST, task: "works offline" }).pipe(Effect.provide(logs.layer))
      const done = yield* host.awaitSettled(id)
      expect(done.status).toBe("completed")
      expect(done.result).toBe(`answer to "works offline"`)
      expect(done.attempts).toBe(1)
      expect(done.error).toBeUndefined()

      // One line per tolerated failure: what failed, why, and which setting to check.
      const warnings = logs.lines.filter((line) => line.level === "WARN").map((line) => line.message).sort()
      // The update waits behind the record it updates, which is owed: sent again until the platform is back.
      expect(warnings.map((warning) => warning.split(": ")[0])).toEqual([
        "platform notify failed; the delegation outcome is unchanged",
        "platform record failed; it is sent again until the platform acknowledges it"
      ])
      expect((yield* host.status(id)).platformPending).toBe(true)
      for (const warning of warnings) {
        expect(warning).toContain("connection refused")
        expect(warning).toContain(`check PLATFORM_URL (${platformUrl})`)
        expect(warning).not.toContain("\n")
      }
      expect(logs.lines.filter((line) => line.level === "ERROR" || line.level === "FATAL")).toEqual([])

      expect(yield* Context.get(context, DiscoveryTest.DiscoveryTest).lookups).toEqual([WS_FAST])
      const audit = yield* Context.get(context, AuditMemory.AuditMemory).records
      expect(audit.map((record) => record.outcome)).toEqual(["dispatched", "success"])
      const sent = yield* fast.requests
      expect(sent).toHaveLength(1)
      expect(sent[0]!.headers["authorization"]).toBeUndefined()
    }))
})

describe("e2e: the local platform's contract", () => {
  it.scopedLive("past its rate limit every route answers 429 with retry_after, and Retry-After and X-RateLimit-* headers", () =>
    Effect.gen(function*() {
      const world = yield* makeWorldWith({ rateLimit: { requests: 2, per: "1 minute" } })
      const list = HttpClientRequest.get(`${world.platform.url}/workspaces/${SELF}/delegations`).pipe(
        HttpClientRequest.bearerToken(world.selfToken)
      )
      const answers = yield* Effect.forEach([1, 2, 3], () =>
        Effect.flatMap(world.client.execute(list), (response) =>
          Effect.map(response.json, (body) => ({ status: response.status, headers: response.headers, body }))))
      expect(answers.map((a) => a.status)).toEqual([200, 200, 429])
      expect(answers.map((a) => a.headers["x-ratelimit-remaining"])).toEqual(["1", "0", "0"])
      expect(answers[2]!.headers["x-ratelimit-limit"]).toBe("2")
      expect(answers[2]!.headers["retry-after"]).toBe("30")
      expect(answers[2]!.body).toEqual({ error: "rate limit exceeded", retry_after: 30 })
    }).pipe(quiet))

  it.scopedLive("a host with a wrong PLATFORM_TOKEN fails discovery with the platform's 401 text", () =>
    Effect.gen(function*() {
      const world = yield* makeWorld
      const fast = yield* world.peer(WS_FAST, {})
      const host = yield* world.host({ platformToken: "tok-not-mine" })

      const id = yield* host.delegate({ workspaceId: WS_FAST, task: "who am I?" })
      const done = yield* host.awaitSettled(id)
      expect(done.status).toBe("failed")
      expect(done.error).toBe(
        "Discovery failed: HTTP 401 (invalid workspace auth token; the platform rejected PLATFORM_TOKEN: check it)"
      )
      expect(done.attempts).toBe(0)
      const cause = done.cause
      expect(cause?._tag).toBe("DiscoveryError")
      if (cause?._tag === "DiscoveryError") expect(cause.status).toBe(401)

      expect(yield* fast.requests).toEqual([])
      expect(yield* world.platform.rows).toEqual([])
      expect(yield* world.platform.notifications).toEqual([])
    }).pipe(quiet))

  it.scopedLive("record, update and list need the workspace's own bearer; the proxy needs the caller's", () =>
    Effect.gen(function*() {
      const world = yield* makeWorld
      const fast = yield* world.peer(WS_FAST, {})
      const otherToken = yield* world.platform.register({ id: "ws-other" })

      const endpoints = [
        {
          method: "POST",
          path: `/workspaces/${SELF}/delegations/record`,
          body: { target_id: WS_FAST, task: "t", delegation_id: "d-1" }
        },
        { method: "POST", path: `/workspaces/${SELF}/delegations/d-1/update`, body: { status: "completed" } },
        { method: "GET", path: `/workspaces/${SELF}/delegations`, body: undefined }
      ] as const
      for (const { body, method, path } of endpoints) {
        expect(yield* world.call(method, path, { body })).toEqual({
          status: 401,
          body: { error: "missing workspace auth token" }
        })
        for (const token of ["tok-wrong", otherToken]) {
          expect(yield* world.call(method, path, { body, token })).toEqual({
            status: 401,
            body: { error: "invalid workspace auth token" }
          })
        }
      }
      expect(yield* world.platform.rows).toEqual([])

      // the right token is accepted
      expect(yield* world.call("POST", endpoints[0].path, { body: endpoints[0].body, token: world.selfToken })).toEqual({
        status: 202,
        body: { delegation_id: "d-1", status: "recorded" }
      })

      const envelope = {
        jsonrpc: "2.0",
        id: "r-1",
        method: "message/send",
        params: { message: { kind: "message", role: "user", messageId: "m-1", parts: [{ kind: "text", text: "hi" }] } }
      }
      expect(yield* world.call("POST", `/workspaces/${WS_FAST}/a2a`, { body: envelope, workspaceId: SELF, token: "tok-wrong" }))
        .toEqual({ status: 401, body: { error: "invalid caller auth token" } })
      expect(yield* world.call("POST", `/workspaces/${WS_FAST}/a2a`, { body: envelope, workspaceId: SELF }))
        .toEqual({ status: 401, body: { error: "missing caller auth token" } })
      expect(yield* fast.requests).toEqual([])
    }).pipe(quiet))

  it.scopedLive("bad bodies answer 400 with the platform's messages", () =>
    Effect.gen(function*() {
      const world = yield* makeWorld
      const token = world.selfToken

      expect(
        yield* world.call("POST", `/workspaces/${SELF}/delegations/record`, {
          token,
          body: { target_id: WS_FAST, task: "no id" }
        })
      ).toEqual({ status: 400, body: { error: "invalid request body" } })
      expect(
        yield* world.call("POST", `/workspaces/${SELF}/delegations/record`, {
          token,
          body: { target_id: "ws-fast", task: "t", delegation_id: "d-1" }
        })
      ).toEqual({ status: 400, body: { error: "target_id must be a valid UUID" } })
      expect(
        yield* world.call("POST", `/workspaces/${SELF}/delegations/d-1/update`, { token, body: { status: "queued" } })
      ).toEqual({ status: 400, body: { error: "status must be 'completed' or 'failed'" } })
      expect(yield* world.call("POST", `/workspaces/${SELF}/notify`, { token, body: { type: "delegation_complete" } }))
        .toEqual({ status: 400, body: { error: "message is required" } })
      expect(yield* world.call("POST", `/workspaces/${SELF}/notify`, { token, body: { message: "hello" } }))
        .toEqual({ status: 200, body: { status: "sent" } })
      expect(yield* world.platform.rows).toEqual([])
    }).pipe(quiet))

  it.scopedLive("discover: 400 without X-Workspace-ID, 403 for an unknown target, 503 for an offline one", () =>
    Effect.gen(function*() {
      const world = yield* makeWorld
      const fast = yield* world.peer(WS_FAST, {})
      const token = world.selfToken

      expect(yield* world.call("GET", `/registry/discover/${WS_FAST}`, { token })).toEqual({
        status: 400,
        body: { error: "X-Workspace-ID header is required" }
      })
      // unknown, or not a UUID (even a registered one): the hierarchy lookup fails closed
      for (const target of [workspace("nobody"), "ws-nobody"]) {
        expect(yield* world.call("GET", `/registry/discover/${target}`, { token, workspaceId: SELF })).toEqual({
          status: 403,
          body: { error: "not authorized to discover this workspace" }
        })
      }
      yield* world.peer("ws-named", {})
      expect((yield* world.call("GET", "/registry/discover/ws-named", { token, workspaceId: SELF })).status).toBe(403)
      expect(yield* world.call("GET", `/registry/discover/${WS_FAST}`, { token, workspaceId: SELF })).toEqual({
        status: 200,
        body: { id: WS_FAST, url: fast.url, name: WS_FAST }
      })

      yield* world.platform.setStatus(WS_FAST, "offline")
      expect(yield* world.call("GET", `/registry/discover/${WS_FAST}`, { token, workspaceId: SELF })).toEqual({
        status: 503,
        body: { error: "workspace not available", status: "offline" }
      })
      // and a delegation to it fails at discovery with that text
      const host = yield* world.host()
      const done = yield* host.awaitSettled(yield* host.delegate({ workspaceId: WS_FAST, task: "are you there?" }))
      expect(done.status).toBe("failed")
      expect(done.error).toBe("Discovery failed: HTTP 503 (workspace not available)")
      expect(yield* fast.requests).toEqual([])
    }).pipe(quiet))

  it.scopedLive("the proxy queues a busy target's requests; POST /registry/heartbeat drains one when the target reports a free place", () =>
    Effect.gen(function*() {
      const world = yield* makeWorld
      const peer = yield* LocalPeer.make({ protocol: "0.3", behaviour: { latency: "300 millis" } })
      const id = workspace("beat")
      const token = yield* world.platform.register({ id, url: peer.url, capacity: 1 })
      const send = (messageId: string) =>
        world.call("POST", `/workspaces/${id}/a2a`, {
          workspaceId: SELF,
          token: world.selfToken,
          body: { method: "message/send", params: { message: { role: "user", messageId, parts: [{ kind: "text", text: "hi" }] } } }
        })
      const first = yield* Effect.fork(send("m-0"))
      yield* eventually(peer.active, (active) => active === 1, "the first request to reach the peer")
      expect(field((yield* send("m-1")).body, "queue_depth")).toBe(1)
      // the same messageId while queued is the same item
      const again = yield* send("m-1")
      expect([again.status, field(again.body, "queue_depth")]).toEqual([202, 1])
      expect(field((yield* send("m-2")).body, "queue_depth")).toBe(2)
      yield* Fiber.join(first)

      const beat = (activeTasks: number, bearer = token) =>
        world.call("POST", "/registry/heartbeat", { token: bearer, body: { workspace_id: id, active_tasks: activeTasks } })
      expect(yield* beat(0, "tok-wrong")).toEqual({ status: 401, body: { error: "invalid workspace auth token" } })
      // a target that reports itself full gets nothing
      expect(yield* beat(1)).toEqual({ status: 200, body: { status: "ok" } })
      yield* Effect.sleep("200 millis")
      expect(yield* world.platform.queueDepth(id)).toBe(2)
      // one item per heartbeat, oldest first; the proxy normalised it into a JSON-RPC 2.0 envelope
      yield* beat(0)
      const sent = yield* eventually(peer.requests, (all) => all.length === 2, "one drained item")
      expect(field(sent[1]!.body, "params", "message", "messageId")).toBe("m-1")
      expect(field(sent[1]!.body, "jsonrpc")).toBe("2.0")
      expect(yield* world.platform.queueDepth(id)).toBe(1)
    }).pipe(quiet))

  it.scopedLive("the proxy reads at most 1 MiB of a request: a longer one is cut and answered 400 invalid JSON", () =>
    Effect.gen(function*() {
      const world = yield* makeWorld
      const fast = yield* world.peer(WS_FAST, {})
      const envelope = (text: string) => ({
        jsonrpc: "2.0",
        id: "r-1",
        method: "message/send",
        params: { message: { kind: "message", role: "user", messageId: "m-1", parts: [{ kind: "text", text }] } }
      })
      const send = (text: string) =>
        world.call("POST", `/workspaces/${WS_FAST}/a2a`, { body: envelope(text), workspaceId: SELF, token: world.selfToken })
      expect(yield* send("x".repeat(1024 * 1024))).toEqual({ status: 400, body: { error: "invalid JSON" } })
      expect((yield* send("x".repeat(1000 * 1000))).status).toBe(200)
      expect(yield* fast.requests).toHaveLength(1)
    }).pipe(quiet))

  it.scopedLive("the list is newest first, at most 50 rows, previews cut to 300 bytes (multi-byte text: see platform dispatch)", () =>
    Effect.gen(function*() {
      const world = yield* makeWorld
      const token = world.selfToken
      const ids = Array.from({ length: 55 }, (_, i) => `d-${String(i).padStart(2, "0")}`)
      for (const id of ids) {
        const recorded = yield* world.call("POST", `/workspaces/${SELF}/delegations/record`, {
          token,
          body: { target_id: WS_FAST, task: `task ${id}`, delegation_id: id }
        })
        expect(recorded.status).toBe(202)
      }
      const preview = Array.from({ length: 1000 }, (_, i) => String.fromCharCode(97 + (i % 26))).join("")
      const updated = yield* world.call("POST", `/workspaces/${SELF}/delegations/d-00/update`, {
        token,
        body: { status: "completed", error: "", response_preview: preview }
      })
      expect(updated).toEqual({ status: 200, body: { status: "completed", delegation_id: "d-00" } })

      const list = yield* world.call("GET", `/workspaces/${SELF}/delegations`, { token })
      expect(list.status).toBe(200)
      const rows = items(list.body)
      expect(rows).toHaveLength(50)
      // newest first: d-00's result row, then the delegate rows d-54 down to d-06
      expect(rows.map((row) => field(row, "delegation_id"))).toEqual(["d-00", ...ids.slice(6).reverse()])
      expect(field(rows[0], "status")).toBe("completed")
      expect(field(rows[0], "response_preview")).toBe(`${preview.slice(0, 300)}...`)
      for (const row of rows.slice(1)) {
        expect(field(row, "status")).toBe("dispatched")
        expect(field(row, "response_preview")).toBeUndefined()
      }
      const created = rows.map((row) => String(field(row, "created_at")))
      expect([...created].sort().reverse()).toEqual(created)
    }).pipe(quiet))
})
