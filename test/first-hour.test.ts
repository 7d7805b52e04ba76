/**
 * What a new user meets in the first hour: `await` that waits for the final outcome, duration
 * options in the unit of their environment variable, a quiet console, and configuration errors
 * that name the variable to set.
 */
import { describe, expect, it } from "@effect/vitest"
import { A2ATransportTest, Delegations, DelegationsLayer, DelegationsLive, PlatformMirrorTest } from "effect-a2a-delegation"
import type { PlatformDelegationRow } from "effect-a2a-delegation"
import { HttpClient } from "@effect/platform"
import { Config, ConfigError, ConfigProvider, Context, Duration, Effect, Fiber, Layer, Logger, LogLevel, Ref, TestClock } from "effect"
import { captureLogs } from "./fixtures/e2e.js"
import * as Http from "./fixtures/http.js"
import { PEER, testLayer } from "./fixtures/layers.js"

const PLATFORM = "http://platform:8080"
const PEER_A2A = "http://peer:8000/a2a"

const row = (delegationId: string, status: string, extra: Partial<PlatformDelegationRow> = {}): PlatformDelegationRow => ({
  delegation_id: delegationId,
  type: "delegation",
  status,
  ...extra
})

const messageReply = (request: Http.Recorded) =>
  Http.reply(200, {
    jsonrpc: "2.0",
    id: (request.body as { readonly id?: unknown } | undefined)?.id ?? null,
    result: { kind: "message", role: "agent", messageId: "m-1", parts: [{ kind: "text", text: "pong" }] }
  })

/** A platform that discovers the peer and accepts every mirror call, and a 0.3 peer that answers "pong". */
const healthyNetwork = (request: Http.Recorded): Http.Step =>
  request.url === `${PLATFORM}/registry/discover/${PEER}`
    ? Http.reply(200, { id: PEER, url: PEER_A2A })
    : request.url === PEER_A2A
    ? messageReply(request)
    : request.url.startsWith("http://peer:8000/")
    ? Http.reply(404, "not found")
    : Http.reply(200, { status: "ok" })

/** A healthy network whose platform answers the first record 503 (owed, sent again in a second), then recovers. */
const recordRefusedOnce: Http.Handler = (request, previous) =>
  Effect.succeed(
    request.url.endsWith("/delegations/record") && !previous.some((earlier) => earlier.url.endsWith("/delegations/record"))
      ? Http.reply(503, { error: "restarting" })
      : healthyNetwork(request)
  )

const fromEnv = (env: ReadonlyArray<readonly [string, string]>) =>
  Layer.setConfigProvider(ConfigProvider.fromMap(new Map(env)))

const delegateOnce = (task = "ping") =>
  Effect.flatMap(Delegations, (d) => Effect.flatMap(d.delegate({ workspaceId: PEER, task }), d.await))

// --- await --------------------------------------------------------------------------------------------

describe("await waits for the final outcome", () => {
  const queued = A2ATransportTest.queued({ queueId: "q-1", queueDepth: 1, message: "queued" })

  it.effect("through queued: it returns completed once the platform has the result", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      const id = yield* d.delegate({ workspaceId: PEER, task: "busy" })
      const waiting = yield* Effect.fork(d.await(id))
      expect((yield* d.awaitSettled(id)).status).toBe("queued")
      yield* TestClock.adjust("5 seconds")
      expect(waiting.unsafePoll()).toBeNull()
      const p = yield* PlatformMirrorTest.PlatformMirrorTest
      yield* p.setRows([row(id, "completed", { response_preview: "the late answer" })])
      yield* TestClock.adjust("10 seconds")
      const done = yield* Fiber.join(waiting)
      expect(done.status).toBe("completed")
      expect(done.result).toBe("the late answer")
    }).pipe(Effect.provide(testLayer({ send: [queued] }))))

  it.effect("through queued: a failure the platform records ends it failed with the platform's error", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      const id = yield* d.delegate({ workspaceId: PEER, task: "busy" })
      const waiting = yield* Effect.fork(d.await(id))
      yield* TestClock.adjust("1 second")
      const p = yield* PlatformMirrorTest.PlatformMirrorTest
      yield* p.setRows([row(id, "failed", { error: "peer crashed" })])
      yield* TestClock.adjust("10 seconds")
      const done = yield* Fiber.join(waiting)
      expect(done.status).toBe("failed")
      expect(done.error).toContain("peer crashed")
    }).pipe(Effect.provide(testLayer({ send: [queued] }))))

  it.effect("awaitSettled returns at queued without asking the platform", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      const id = yield* d.delegate({ workspaceId: PEER, task: "busy" })
      const settled = yield* d.awaitSettled(id)
      expect(settled.status).toBe("queued")
      expect(yield* Effect.flatMap(PlatformMirrorTest.PlatformMirrorTest, (p) => p.listCalls)).toBe(0)
    }).pipe(Effect.provide(testLayer({ send: [queued] }))))
})

// --- durations -------------------------------------------------------------------------------------------

describe("duration options", () => {
  /** The live stack over `network`, built for the test's scope. */
  const build = (options: Partial<DelegationsLayer.Options>, network: Http.Handler) =>
    Layer.build(
      DelegationsLayer.layer({ workspaceId: "ws-me", platformUrl: PLATFORM, protocol: "0.3", ...options }).pipe(
        Layer.provide(Http.layer(network))
      )
    ).pipe(Effect.map(Context.get(Delegations)))

  /** Delegates once and returns the waiting fiber. */
  const started = (d: Delegations["Type"]) => Effect.flatMap(d.delegate({ workspaceId: PEER, task: "ping" }), (id) => Effect.fork(d.await(id)))

  const hungPeer: Http.Handler = (request) => request.url === PEER_A2A ? Effect.never : Effect.succeed(healthyNetwork(request))

  const timeouts = [
    { name: "layer({ timeout: 2 }) gives a hung peer two seconds, not two milliseconds", timeout: 2, just: 1900, past: 200, text: "2s" },
    { name: "Effect duration input is taken as it is: timeout \"250 millis\"", timeout: "250 millis", just: 240, past: 20, text: "250ms" }
  ] as const
  for (const { just, name, past, text, timeout } of timeouts) {
    it.scoped(name, () =>
      Effect.gen(function*() {
        const d = yield* build({ timeout, retryAttempts: 1 }, hungPeer)
        const waiting = yield* started(d)
        yield* TestClock.adjust(`${just} millis`)
        expect(waiting.unsafePoll()).toBeNull()
        yield* TestClock.adjust(`${past} millis`)
        const done = yield* Fiber.join(waiting)
        expect(done.status).toBe("failed")
        expect(done.error).toContain(text)
      }))
  }

  it.scoped("retryDelay: 2 waits two seconds before the retry", () =>
    Effect.gen(function*() {
      const posts = yield* Ref.make(0)
      const refusedOnce: Http.Handler = (request) =>
        request.url === PEER_A2A
          ? Effect.map(Ref.getAndUpdate(posts, (n) => n + 1), (n) => n === 0 ? "refused" as const : healthyNetwork(request))
          : Effect.succeed(healthyNetwork(request))
      const d = yield* build({ retryDelay: 2 }, refusedOnce)
      const waiting = yield* started(d)
      yield* TestClock.adjust("1900 millis")
      expect(yield* Ref.get(posts)).toBe(1)
      yield* TestClock.adjust("200 millis")
      const done = yield* Fiber.join(waiting)
      expect(done.status).toBe("completed")
      expect(done.attempts).toBe(2)
      expect(yield* Ref.get(posts)).toBe(2)
    }))

  it.scoped("mirrorTimeout: 7 gives a hung platform call seven seconds", () =>
    Effect.gen(function*() {
      // The first record hangs; the one sent again when the layer closes lands.
      const hungRecord: Http.Handler = (request, previous) =>
        request.url.endsWith("/delegations/record") &&
          !previous.some((earlier) => earlier.url.endsWith("/delegations/record"))
          ? Effect.never
          : Effect.succeed(healthyNetwork(request))
      const d = yield* build({ mirrorTimeout: 7 }, hungRecord)
      const waiting = yield* started(d)
      yield* TestClock.adjust("6900 millis")
      expect(waiting.unsafePoll()).toBeNull()
      yield* TestClock.adjust("200 millis")
      const done = yield* Fiber.join(waiting)
      // The record is best-effort: once it is given up, the delegation goes on and completes.
      expect(done.status).toBe("completed")
    }))

  it.effect("a value out of bounds fails the layer with a ConfigError naming the setting", () =>
    Effect.gen(function*() {
      for (
        const [options, key] of [
          [{ timeout: -1 }, "DELEGATION_TIMEOUT"],
          [{ timeout: Number.NaN }, "DELEGATION_TIMEOUT"],
          [{ timeout: "soon" as Duration.DurationInput }, "DELEGATION_TIMEOUT"],
          [{ retryDelay: "later" as Duration.DurationInput }, "DELEGATION_RETRY_DELAY"],
          [{ timeout: 0 }, "DELEGATION_TIMEOUT"],
          [{ mirrorTimeout: 0 }, "mirrorTimeout"],
          [{ history: -1 }, "DELEGATION_HISTORY"],
          [{ retryAttempts: 0 }, "DELEGATION_RETRY_ATTEMPTS"],
          [{ workspaceId: " " }, "WORKSPACE_ID"],
          [{ platformUrl: "ftp://platform" }, "PLATFORM_URL"]
        ] as const
      ) {
        const error = yield* Effect.flip(Effect.scoped(build(options, (request) => Effect.succeed(healthyNetwork(request)))))
        expect(ConfigError.isConfigError(error), key).toBe(true)
        expect(String(error), key).toContain(key)
      }
    }))

  it.scoped("layerConfig takes a Config per option, under the host's own names", () =>
    Effect.gen(function*() {
      const layer = DelegationsLayer.layerConfig({
        workspaceId: Config.string("MY_WORKSPACE"),
        platformUrl: Config.string("MY_PLATFORM"),
        protocol: Config.succeed("0.3" as const),
        timeout: Config.number("MY_TIMEOUT_SECONDS")
      }).pipe(Layer.provide(Http.layer((request) => Effect.succeed(healthyNetwork(request)))))
      const env = fromEnv([["MY_WORKSPACE", "ws-me"], ["MY_PLATFORM", PLATFORM], ["MY_TIMEOUT_SECONDS", "30"]])
      const done = yield* delegateOnce().pipe(Effect.provide(layer.pipe(Layer.provide(env))))
      expect(done.status).toBe("completed")
      expect(done.result).toBe("pong")

      const missing = yield* Effect.flip(Effect.scoped(Layer.build(layer.pipe(Layer.provide(fromEnv([]))))))
      expect(ConfigError.isConfigError(missing)).toBe(true)
      expect(String(missing)).toContain("MY_WORKSPACE")
      const outOfBounds = DelegationsLayer.layerConfig({ workspaceId: Config.succeed("ws-me"), timeout: Config.succeed(0) })
      const error = yield* Effect.flip(Effect.scoped(Layer.build(outOfBounds.pipe(Layer.provide(Http.layer(() => Effect.never))))))
      expect(String(error)).toContain("DELEGATION_TIMEOUT")
    }))

  it.effect("the same bounds hold for values from the environment", () =>
    Effect.gen(function*() {
      for (
        const [name, value] of [
          ["DELEGATION_TIMEOUT", "0"],
          ["DELEGATION_RETRY_DELAY", "-5"],
          ["DELEGATION_HISTORY", "-1"],
          ["DELEGATION_CONCURRENCY", "0"],
          ["WORKSPACE_ID", ""]
        ] as const
      ) {
        const layer = DelegationsLive.pipe(
          Layer.provide(Http.layer((request) => Effect.succeed(healthyNetwork(request)))),
          Layer.provide(fromEnv([["WORKSPACE_ID", "ws-me"], ["PLATFORM_URL", PLATFORM], [name, value]]))
        )
        const error = yield* Effect.flip(Effect.scoped(Layer.build(layer)))
        expect(ConfigError.isConfigError(error), name).toBe(true)
        expect(String(error), name).toContain(name)
      }
    }))
})

// --- a quiet console -------------------------------------------------------------------------------------

describe("logging", () => {
  it.scoped("a successful delegation writes nothing at Info: audit lines are at Debug unless asked", () =>
    Effect.gen(function*() {
      const logs = captureLogs()
      const layer = DelegationsLive.pipe(
        Layer.provide(Http.layer((request) => Effect.succeed(healthyNetwork(request)))),
        Layer.provide(fromEnv([["WORKSPACE_ID", "ws-me"], ["PLATFORM_URL", PLATFORM], ["A2A_PROTOCOL", "0.3"]]))
      )
      const quiet = yield* delegateOnce().pipe(Effect.provide(layer), Effect.provide(logs.layer))
      expect(quiet.status).toBe("completed")
      expect(logs.lines).toEqual([])

      const debug = captureLogs()
      yield* delegateOnce().pipe(
        Effect.provide(layer),
        Effect.provide(debug.layer),
        Effect.provide(Logger.minimumLogLevel(LogLevel.Debug))
      )
      expect(debug.lines.filter((line) => line.message.startsWith("audit ")).map((line) => [line.level, line.message]))
        .toEqual([["DEBUG", "audit delegation dispatched"], ["DEBUG", "audit delegation success"]])

      const asked = captureLogs()
      const atInfo = DelegationsLive.pipe(
        Layer.provide(Http.layer((request) => Effect.succeed(healthyNetwork(request)))),
        Layer.provide(fromEnv([
          ["WORKSPACE_ID", "ws-me"],
          ["PLATFORM_URL", PLATFORM],
          ["A2A_PROTOCOL", "0.3"],
          ["AUDIT_LOG_LEVEL", "Info"]
        ]))
      )
      yield* delegateOnce().pipe(Effect.provide(atInfo), Effect.provide(asked.layer))
      expect(asked.lines.map((line) => [line.level, line.message]))
        .toEqual([["INFO", "audit delegation dispatched"], ["INFO", "audit delegation success"]])
    }))

  it.scoped("a tolerated platform failure is one warning line without a stack; the stack is at Debug", () =>
    Effect.gen(function*() {
      const network = Http.layer((request) =>
        Effect.succeed(
          request.url.endsWith("/delegations/record") ? Http.reply(500, { error: "database is down" }) : healthyNetwork(request)
        )
      )
      const layer = DelegationsLayer.layer({ workspaceId: "ws-me", platformUrl: PLATFORM, protocol: "0.3" }).pipe(
        Layer.provide(network)
      )
      const logs = captureLogs()
      const done = yield* delegateOnce().pipe(Effect.provide(layer), Effect.provide(logs.layer))
      expect(done.status).toBe("completed")
      // The record is owed (sent again until it lands), so closing the layer says what was left undelivered.
      expect(logs.lines.map((line) => [line.level, line.message])).toEqual([
        [
          "WARN",
          "platform record failed; it is sent again until the platform acknowledges it: Platform record failed (Status HTTP 500): database is down"
        ],
        [
          "WARN",
          "the Delegations layer closed with 2 platform write(s) of 1 delegation(s) not acknowledged by the platform; their rows on the platform are out of date"
        ]
      ])
      expect(logs.lines[0]!.message).not.toContain("\n")

      const debug = captureLogs()
      yield* delegateOnce().pipe(
        Effect.provide(layer),
        Effect.provide(debug.layer),
        Effect.provide(Logger.minimumLogLevel(LogLevel.Debug))
      )
      // Once when it failed, once more when the layer closed (its last round).
      expect(debug.lines.filter((line) => line.level === "DEBUG" && line.message.startsWith("platform record failed")))
        .toHaveLength(2)
    }))

  it.scoped("an owed platform write is sent again a second later while the layer is open, and the row catches up", () =>
    Effect.gen(function*() {
      const network = yield* Http.make(recordRefusedOnce)
      const context = yield* Layer.build(
        DelegationsLayer.layer({ workspaceId: "ws-me", platformUrl: PLATFORM, protocol: "0.3" }).pipe(
          Layer.provide(Layer.succeed(HttpClient.HttpClient, network.client))
        )
      )
      const d = Context.get(context, Delegations)
      const logs = captureLogs()
      const done = yield* Effect.flatMap(d.delegate({ workspaceId: PEER, task: "ping" }), d.await).pipe(
        Effect.provide(logs.layer)
      )
      expect(done.status).toBe("completed")
      expect(done.platformPending).toBe(true)
      const mirrored = Effect.map(
        network.requests,
        (all) => all.filter((request) => request.url.includes("/delegations/")).map((request) => request.url.slice(PLATFORM.length))
      )
      expect(yield* mirrored).toEqual(["/workspaces/ws-me/delegations/record"])

      yield* TestClock.adjust("1 second")
      expect(yield* mirrored).toEqual([
        "/workspaces/ws-me/delegations/record",
        "/workspaces/ws-me/delegations/record",
        `/workspaces/ws-me/delegations/${done.id}/update`
      ])
      expect((yield* d.status(done.id)).platformPending).toBeUndefined()
    }))

  it.scoped("a platform write still owed when the layer closes is sent once more, and lands: no warning", () =>
    Effect.gen(function*() {
      const network = yield* Http.make(recordRefusedOnce)
      const layer = DelegationsLayer.layer({ workspaceId: "ws-me", platformUrl: PLATFORM, protocol: "0.3" }).pipe(
        Layer.provide(Layer.succeed(HttpClient.HttpClient, network.client))
      )
      const logs = captureLogs()
      // Closed as soon as the delegation completes, before the outbox's next round.
      const done = yield* delegateOnce().pipe(Effect.provide(layer), Effect.provide(logs.layer))
      expect(done.status).toBe("completed")
      const all = yield* network.requests
      const mirrored = all.filter((request) => request.url.includes("/delegations/"))
      expect(mirrored.map((request) => request.url.slice(PLATFORM.length))).toEqual([
        "/workspaces/ws-me/delegations/record",
        "/workspaces/ws-me/delegations/record",
        `/workspaces/ws-me/delegations/${done.id}/update`
      ])
      expect(logs.lines.map((line) => line.message)).toEqual([
        "platform record failed; it is sent again until the platform acknowledges it: Platform record failed (Status HTTP 503): restarting"
      ])
    }))
})

// --- configuration errors name the variable ------------------------------------------------------------------

describe("errors caused by configuration name the variable to set", () => {
  it.scoped("no PLATFORM_URL: an unreachable default platform says to set PLATFORM_URL", () =>
    Effect.gen(function*() {
      const network = Http.layer(() => Effect.succeed("refused" as const))
      const layer = DelegationsLive.pipe(
        Layer.provide(network),
        Layer.provide(fromEnv([["WORKSPACE_ID", "ws-me"], ["DELEGATION_RETRY_ATTEMPTS", "1"]]))
      )
      const done = yield* delegateOnce().pipe(Effect.provide(layer))
      expect(done.status).toBe("failed")
      expect(done.error).toContain("PLATFORM_URL is not set")
      expect(done.error).toContain(DelegationsLayer.DEFAULT_PLATFORM_URL)
    }))

  it.scoped("a configured but unreachable platform names PLATFORM_URL and its value", () =>
    Effect.gen(function*() {
      const layer = DelegationsLayer.layer({ workspaceId: "ws-me", platformUrl: PLATFORM }).pipe(
        Layer.provide(Http.layer(() => Effect.succeed("refused" as const)))
      )
      const done = yield* delegateOnce().pipe(Effect.provide(layer))
      expect(done.error).toContain(`check PLATFORM_URL (${PLATFORM})`)
    }))

  it.scoped("a 401 from the platform names PLATFORM_TOKEN, whether it is missing or wrong", () =>
    Effect.gen(function*() {
      const network = Http.layer((request) =>
        Effect.succeed(
          request.url.startsWith(`${PLATFORM}/registry/`)
            ? Http.reply(401, { error: "missing workspace auth token" })
            : healthyNetwork(request)
        )
      )
      const missing = yield* delegateOnce().pipe(
        Effect.provide(DelegationsLayer.layer({ workspaceId: "ws-me", platformUrl: PLATFORM }).pipe(Layer.provide(network)))
      )
      expect(missing.error).toContain("no PLATFORM_TOKEN is set")
      const wrong = yield* delegateOnce().pipe(
        Effect.provide(
          DelegationsLayer.layer({ workspaceId: "ws-me", platformUrl: PLATFORM, platformToken: "stale" }).pipe(
            Layer.provide(network)
          )
        )
      )
      expect(wrong.error).toContain("the platform rejected PLATFORM_TOKEN")
      expect(wrong.error).not.toContain("stale")
    }))
})
