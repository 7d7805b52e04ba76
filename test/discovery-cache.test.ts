/**
 * DISCOVERY_CACHE_TTL: the cache in front of discovery, alone (over a counting discovery) and in
 * the live stack (over a scripted network), on the TestClock.
 */
import { describe, expect, it } from "@effect/vitest"
import {
  Delegations,
  DelegationsLayer,
  DelegationsLive,
  Discovery,
  DiscoveryCache,
  DiscoveryError,
  DiscoveryTest,
  PeerEndpoint
} from "effect-a2a-delegation"
import { ConfigError, ConfigProvider, Effect, Fiber, Layer, Ref, TestClock } from "effect"
import * as Http from "./fixtures/http.js"
import type { Recorded, Step } from "./fixtures/http.js"

// --- the cache alone -----------------------------------------------------------------------------

const PEER_URL = "http://peer:8000/a2a"

/** The cache over `DiscoveryTest`, whose `lookups` count the requests that got through. */
const cached = (
  options: DiscoveryCache.Options,
  peers: Readonly<Record<string, string | DiscoveryError>> = { target: PEER_URL, other: "http://other:8000/a2a" }
) => DiscoveryCache.layer(options).pipe(Layer.provideMerge(DiscoveryTest.layer(peers)))

const resolve = (workspaceId: string) => Effect.flatMap(Discovery, (discovery) => discovery.resolve(workspaceId))
const lookups = Effect.flatMap(DiscoveryTest.DiscoveryTest, (test) => test.lookups)

/** A discovery that takes a second of the Clock per lookup, counting them. */
const slowDiscovery = Effect.gen(function*() {
  const count = yield* Ref.make(0)
  const discovery = Discovery.of({
    resolve: (workspaceId) =>
      Ref.update(count, (n) => n + 1).pipe(
        Effect.zipRight(Effect.sleep("1 second")),
        Effect.as(new PeerEndpoint({ id: workspaceId, url: PEER_URL }))
      )
  })
  return { discovery, count: Ref.get(count) }
})

describe("DiscoveryCache", () => {
  it.effect("two resolves of one target make one lookup; past the time to live, the next looks again", () =>
    Effect.gen(function*() {
      expect((yield* resolve("target")).url).toBe(PEER_URL)
      expect((yield* resolve("target")).url).toBe(PEER_URL)
      expect(yield* lookups).toEqual(["target"])
      // Kept up to its time to live, on the Clock.
      yield* TestClock.adjust("30 seconds")
      yield* resolve("target")
      expect(yield* lookups).toEqual(["target"])
      yield* TestClock.adjust("1 millis")
      yield* resolve("target")
      expect(yield* lookups).toEqual(["target", "target"])
    }).pipe(Effect.provide(cached({ timeToLive: "30 seconds" }))))

  it.effect("targets are kept apart", () =>
    Effect.gen(function*() {
      yield* resolve("target")
      const other = yield* resolve("other")
      yield* resolve("target")
      yield* resolve("other")
      expect(other.url).toBe("http://other:8000/a2a")
      expect(yield* lookups).toEqual(["target", "other"])
    }).pipe(Effect.provide(cached({ timeToLive: "30 seconds" }))))

  it.scoped("concurrent resolves of one target share one lookup", () =>
    Effect.gen(function*() {
      const { count, discovery } = yield* slowDiscovery
      const cache = yield* DiscoveryCache.make(discovery, { timeToLive: "30 seconds" })
      const fibers = yield* Effect.forEach([1, 2, 3, 4, 5], () => Effect.fork(cache.resolve("target")))
      yield* TestClock.adjust("1 second")
      const endpoints = yield* Fiber.joinAll(fibers)
      expect(endpoints.map((e) => e.url)).toEqual([PEER_URL, PEER_URL, PEER_URL, PEER_URL, PEER_URL])
      expect(yield* count).toBe(1)
    }))

  it.scoped("interrupting one waiting caller (a cancelled delegation) leaves the others their answer", () =>
    Effect.gen(function*() {
      const { count, discovery } = yield* slowDiscovery
      const cache = yield* DiscoveryCache.make(discovery, { timeToLive: "30 seconds" })
      const first = yield* Effect.fork(cache.resolve("target"))
      yield* TestClock.adjust("100 millis")
      const second = yield* Effect.fork(cache.resolve("target"))
      yield* TestClock.adjust("100 millis")
      yield* Fiber.interrupt(first)
      yield* TestClock.adjust("1 second")
      expect((yield* Fiber.join(second)).url).toBe(PEER_URL)
      // ... and the lookup the first one started is kept.
      yield* cache.resolve("target")
      expect(yield* count).toBe(1)
    }))

  it.effect("a failed discovery is not kept: the next resolve looks again", () =>
    Effect.gen(function*() {
      const first = yield* Effect.flip(resolve("target"))
      expect(first.reason).toBe("Status")
      const second = yield* Effect.flip(resolve("target"))
      expect(second.status).toBe(503)
      expect(yield* lookups).toEqual(["target", "target"])
    }).pipe(Effect.provide(cached({ timeToLive: "30 seconds" }, {
      target: new DiscoveryError({ workspaceId: "target", reason: "Status", status: 503, detail: "workspace not available" })
    }))))

  it.effect("invalidate drops the target only: its next resolve looks again", () =>
    Effect.gen(function*() {
      const discovery = yield* Discovery
      yield* resolve("target")
      yield* resolve("other")
      yield* discovery.invalidate!("target")
      yield* resolve("target")
      yield* resolve("other")
      expect(yield* lookups).toEqual(["target", "other", "target"])
    }).pipe(Effect.provide(cached({ timeToLive: "30 seconds" }))))

  it.effect("a time to live of 0 keeps nothing", () =>
    Effect.gen(function*() {
      yield* resolve("target")
      yield* resolve("target")
      expect(yield* lookups).toEqual(["target", "target"])
    }).pipe(Effect.provide(cached({ timeToLive: 0 }))))

  it.effect("past its capacity, the least recently used target goes first", () =>
    Effect.gen(function*() {
      yield* resolve("target")
      yield* resolve("other")
      yield* resolve("other")
      yield* resolve("target")
      expect(yield* lookups).toEqual(["target", "other", "target"])
    }).pipe(Effect.provide(cached({ timeToLive: "30 seconds", capacity: 1 }))))
})

// --- the live stack ------------------------------------------------------------------------------

const PLATFORM = "http://platform:8080"
const isPeer = (request: Recorded) => request.url === PEER_URL
const isDiscovery = (request: Recorded) => request.url === `${PLATFORM}/registry/discover/target`

/** A JSON-RPC Message answer to a v0.3 `message/send`, echoing its id. */
const answer = (text: string) => (request: Recorded): Step => {
  const body = request.body
  const id = typeof body === "object" && body !== null && "id" in body ? body.id : null
  return Http.reply(200, {
    jsonrpc: "2.0",
    id,
    result: { kind: "message", role: "agent", messageId: "answer-1", parts: [{ kind: "text", text }] }
  })
}

/** The platform answers every call; the peer's n-th POST gets `steps[n]` (the last one repeats). */
const network = (...steps: ReadonlyArray<Step | ((request: Recorded) => Step)>): Http.Handler => (request, previous) => {
  if (isPeer(request)) {
    const step = steps[Math.min(previous.filter(isPeer).length, steps.length - 1)]!
    return Effect.succeed(typeof step === "function" ? step(request) : step)
  }
  if (isDiscovery(request)) return Effect.succeed(Http.reply(200, { id: "target", url: PEER_URL, name: "Target" }))
  if (request.url.endsWith("/notify")) return Effect.succeed(Http.reply(202, { queued: false }))
  return Effect.succeed(Http.reply(200, { status: "ok" }))
}

// One POST per delegation (no retry), in v0.3 (no agent card read), so every request is counted.
const stack = (handler: Http.Handler, options: Partial<DelegationsLayer.Options> = {}) =>
  DelegationsLayer.layer({
    workspaceId: "ws-self",
    platformUrl: PLATFORM,
    platformToken: "tok",
    protocol: "0.3",
    retryAttempts: 1,
    ...options
  }).pipe(Layer.provideMerge(Http.layer(handler)))

const discoveries = Effect.map(Http.requests, (all) => all.filter(isDiscovery).length)

const delegateAndSettle = (task: string) =>
  Effect.gen(function*() {
    const d = yield* Delegations
    return yield* d.awaitSettled(yield* d.delegate({ workspaceId: "target", task }))
  })

describe("DISCOVERY_CACHE_TTL in the live stack", () => {
  it.effect("two delegations to one target make one discovery request; past 30 s, the next discovers again", () =>
    Effect.gen(function*() {
      expect((yield* delegateAndSettle("one")).status).toBe("completed")
      expect((yield* delegateAndSettle("two")).status).toBe("completed")
      expect(yield* discoveries).toBe(1)
      yield* TestClock.adjust("30001 millis")
      expect((yield* delegateAndSettle("three")).status).toBe("completed")
      expect(yield* discoveries).toBe(2)
    }).pipe(Effect.provide(stack(network(answer("done"))))))

  it.effect("delegations started at once to one target share one discovery request", () =>
    Effect.gen(function*() {
      const done = yield* Effect.all(["one", "two", "three"].map(delegateAndSettle), { concurrency: "unbounded" })
      expect(done.map((d) => d.status)).toEqual(["completed", "completed", "completed"])
      expect(yield* discoveries).toBe(1)
    }).pipe(Effect.provide(stack(network(answer("done"))))))

  it.effect("after the peer's connection is refused, the next delegation to it discovers again", () =>
    Effect.gen(function*() {
      const refused = yield* delegateAndSettle("one")
      expect(refused.status).toBe("failed")
      expect(refused.error).toContain("refused")
      expect((yield* delegateAndSettle("two")).status).toBe("completed")
      expect(yield* discoveries).toBe(2)
      // Found again, it is kept again.
      expect((yield* delegateAndSettle("three")).status).toBe("completed")
      expect(yield* discoveries).toBe(2)
    }).pipe(Effect.provide(stack(network("refused", answer("done"))))))

  it.effect("a peer's 404 drops its discovery too; another failure (500) keeps it", () =>
    Effect.gen(function*() {
      expect((yield* delegateAndSettle("one")).error).toContain("404")
      expect((yield* delegateAndSettle("two")).error).toContain("boom")
      expect((yield* delegateAndSettle("three")).status).toBe("completed")
      // The first delegation's discovery, then the second's after the 404; the 500 dropped nothing.
      expect(yield* discoveries).toBe(2)
    }).pipe(Effect.provide(stack(network(
      Http.reply(404, { error: "not found" }),
      Http.reply(500, { error: "boom" }),
      answer("done")
    )))))

  it.effect("a failed discovery is not kept", () =>
    Effect.gen(function*() {
      const first = yield* delegateAndSettle("one")
      expect(first.status).toBe("failed")
      expect(first.error).toContain("503")
      expect((yield* delegateAndSettle("two")).status).toBe("completed")
      expect(yield* discoveries).toBe(2)
    }).pipe(Effect.provide(stack((request, previous) =>
      isDiscovery(request) && !previous.some(isDiscovery)
        ? Effect.succeed(Http.reply(503, { error: "workspace not available", status: "offline" }))
        : network(answer("done"))(request, previous)
    ))))

  it.effect("discoveryCacheTtl: 0 discovers for every delegation", () =>
    Effect.gen(function*() {
      yield* delegateAndSettle("one")
      yield* delegateAndSettle("two")
      expect(yield* discoveries).toBe(2)
    }).pipe(Effect.provide(stack(network(answer("done")), { discoveryCacheTtl: 0 }))))

  it.effect("discoveryCacheTtl takes a duration", () =>
    Effect.gen(function*() {
      yield* delegateAndSettle("one")
      yield* TestClock.adjust("2 seconds")
      yield* delegateAndSettle("two")
      expect(yield* discoveries).toBe(1)
      yield* TestClock.adjust("1 millis")
      yield* delegateAndSettle("three")
      expect(yield* discoveries).toBe(2)
    }).pipe(Effect.provide(stack(network(answer("done")), { discoveryCacheTtl: "2 seconds" }))))
})

// --- from Config ---------------------------------------------------------------------------------

const configured = (entries: ReadonlyArray<readonly [string, string]>) =>
  DelegationsLive.pipe(
    Layer.provideMerge(Http.layer(network(answer("done")))),
    Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map([
      ["WORKSPACE_ID", "ws-self"],
      ["PLATFORM_URL", PLATFORM],
      ["PLATFORM_TOKEN", "tok"],
      ["A2A_PROTOCOL", "0.3"],
      ...entries
    ]))))
  )

describe("DISCOVERY_CACHE_TTL from Config", () => {
  it.effect("DISCOVERY_CACHE_TTL=-1 (or not a number) fails the layer with a ConfigError naming it", () =>
    Effect.gen(function*() {
      for (const value of ["-1", "soon"]) {
        const error = yield* Effect.flip(Effect.asVoid(Delegations).pipe(
          Effect.provide(configured([["DISCOVERY_CACHE_TTL", value]]))
        ))
        expect(ConfigError.isConfigError(error), value).toBe(true)
        expect(error, value).toMatchObject({ path: ["DISCOVERY_CACHE_TTL"] })
      }
    }))

  it.effect("DISCOVERY_CACHE_TTL=5 keeps a discovery 5 seconds", () =>
    Effect.gen(function*() {
      yield* delegateAndSettle("one")
      yield* TestClock.adjust("5 seconds")
      yield* delegateAndSettle("two")
      expect(yield* discoveries).toBe(1)
      yield* TestClock.adjust("1 millis")
      yield* delegateAndSettle("three")
      expect(yield* discoveries).toBe(2)
    }).pipe(Effect.provide(configured([["DISCOVERY_CACHE_TTL", "5"]]))))

  it.effect("DISCOVERY_CACHE_TTL=0 turns the cache off", () =>
    Effect.gen(function*() {
      yield* delegateAndSettle("one")
      yield* delegateAndSettle("two")
      expect(yield* discoveries).toBe(2)
    }).pipe(Effect.provide(configured([["DISCOVERY_CACHE_TTL", "0"]]))))
})
