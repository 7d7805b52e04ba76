/**
 * The README's examples, kept compiling and (where they need no network) running.
 */
import { HttpClient } from "@effect/platform"
import { NodeHttpClient } from "@effect/platform-node"
import { describe, expect, it, vi } from "@effect/vitest"
import {
  A2ATransportTest,
  AuditMemory,
  Delegations,
  DelegationsLayer,
  DelegationsLive,
  DiscoveryTest,
  PlatformMirrorTest,
  RbacTest
} from "effect-a2a-delegation"
import { ConfigProvider, Console, Context, Duration, Effect, Fiber, Layer, ManagedRuntime, Schedule, Stream, TestClock } from "effect"
import { LocalPeer, LocalPlatform } from "effect-a2a-delegation/testing"
import { Chat, LanguageModel } from "@effect/ai"
import { DelegationToolkit, DelegationToolkitLive } from "effect-a2a-delegation/ai"
import { NodeDelegationsLive } from "effect-a2a-delegation/node"
import { OtelNode } from "effect-a2a-delegation/otel"

describe("README", () => {
  it.effect("quick start: the live program wires up from the environment", () => {
    const program = Effect.gen(function*() {
      const delegations = yield* Delegations
      const id = yield* delegations.delegate({ workspaceId: "ws-research", task: "Summarise the Q3 report" })
      const delegation = yield* delegations.await(id)
      yield* Console.log(delegation.status, delegation.result ?? delegation.error)
    })
    const main = program.pipe(Effect.provide(DelegationsLive.pipe(Layer.provide(NodeHttpClient.layerUndici))))
    // Without WORKSPACE_ID the layer fails with a ConfigError instead of running.
    return main.pipe(
      Effect.withConfigProvider(ConfigProvider.fromMap(new Map())),
      Effect.flip,
      Effect.map((error) => expect(error._tag).toBe("ConfigError"))
    )
  })

  it.live("quick start: prints a completed result against the local platform", () =>
    Effect.gen(function*() {
      const platform = yield* LocalPlatform.make()
      const peer = yield* LocalPeer.make({ behaviour: { reply: (task) => `summary of: ${task}` } })
      const token = yield* platform.register({ id: "ws-host" })
      yield* platform.register({ id: "5b0e3c1a-7d2f-4a8e-9c6b-1f2e3d4c5b6a", url: peer.url })
      const printed: Array<string> = []
      const log = vi.spyOn(console, "log").mockImplementation((...args: ReadonlyArray<unknown>) => {
        printed.push(args.join(" "))
      })
      yield* Effect.addFinalizer(() => Effect.sync(() => log.mockRestore()))

      // The README's program, verbatim.
      // The peer's workspace id: on the platform, a UUID.
      const research = "5b0e3c1a-7d2f-4a8e-9c6b-1f2e3d4c5b6a"

      const program = Effect.gen(function*() {
        const delegations = yield* Delegations
        const id = yield* delegations.delegate({ workspaceId: research, task: "Summarise the Q3 report" })
        // ...do other work; later wait for the final outcome (or read delegations.status(id) at any time):
        const delegation = yield* delegations.await(id)
        yield* Console.log(delegation.status, delegation.result ?? delegation.error) // "completed <the peer's answer>"
      })

      yield* program.pipe(
        Effect.provide(DelegationsLive.pipe(Layer.provide(NodeHttpClient.layerUndici))),
        Effect.withConfigProvider(ConfigProvider.fromMap(new Map([
          ["WORKSPACE_ID", "ws-host"],
          ["PLATFORM_URL", platform.url],
          ["PLATFORM_TOKEN", token]
        ])))
      )
      expect(printed).toEqual(["completed summary of: Summarise the Q3 report"])
    }).pipe(Effect.scoped, Effect.provide(NodeHttpClient.layerUndici)))

  it.effect("options object with a custom retry schedule", () =>
    Effect.gen(function*() {
      const DelegationsFromOptions = DelegationsLayer.layer({
        workspaceId: "ws-orchestrator",
        platformUrl: "https://platform.example.com",
        platformToken: "secret",
        retrySchedule: Schedule.exponential("1 second").pipe(Schedule.intersect(Schedule.recurs(4)))
      })
      const running = yield* Effect.flatMap(Delegations, (d) => d.running).pipe(
        Effect.provide(DelegationsFromOptions.pipe(Layer.provide(NodeHttpClient.layerUndici)))
      )
      expect(running).toBe(0)
    }))

  it.effect("lifecycle: idempotency key, watch, await with a timeout, then cancel", () => {
    // The README's program, verbatim.
    const summarise = Effect.gen(function*() {
      const delegations = yield* Delegations
      // The same key again (a retried request) returns this delegation's id instead of starting another.
      const id = yield* delegations.delegate({
        workspaceId: "ws-research",
        task: "Summarise the Q3 report",
        idempotencyKey: "q3-summary"
      })
      // Each state change of this delegation, ending after its final state.
      const watching = yield* Effect.fork(Stream.runForEach(delegations.watch(id), (d) => Console.log(d.status)))
      // Wait at most a minute for the final state; if the wait gives up, the delegation is no longer wanted.
      const delegation = yield* delegations.await(id, { timeout: "1 minute" }).pipe(
        Effect.catchTag("AwaitTimeout", () => delegations.cancel(id))
      )
      yield* Fiber.join(watching)
      yield* Console.log(delegation.status, delegation.result ?? delegation.error)
    })

    const printed: Array<string> = []
    const log = vi.spyOn(console, "log").mockImplementation((...args: ReadonlyArray<unknown>) => {
      printed.push(args.join(" "))
    })
    // A peer that never answers: the wait gives up after the minute and the delegation is cancelled.
    const layer = DelegationsLayer.layerCore({
      workspaceId: "ws-self",
      history: 100,
      timeout: Duration.seconds(300),
      retrySchedule: DelegationsLayer.linearRetry(3, "5 seconds"),
      pollSchedule: DelegationsLayer.defaultPollSchedule
    }).pipe(Layer.provideMerge(Layer.mergeAll(
      A2ATransportTest.layer({ send: [Effect.never] }),
      DiscoveryTest.layer({ "ws-research": "http://peer.test/a2a" }),
      PlatformMirrorTest.layer(),
      AuditMemory.layer({ workspaceId: "ws-self" }),
      RbacTest.layer({ allow: true })
    )))
    return Effect.gen(function*() {
      const running = yield* Effect.fork(summarise)
      yield* TestClock.adjust("1 minute")
      yield* Fiber.join(running)
      const all = yield* Effect.flatMap(Delegations, (d) => d.list)
      expect(all.map((d) => d.status)).toEqual(["cancelled"])
      expect(printed).toEqual(["in_progress", "cancelled", "cancelled cancelled: cancelled by the host"])
    }).pipe(Effect.provide(layer), Effect.ensuring(Effect.sync(() => log.mockRestore())))
  })

  it.effect("testing without HTTP: handles reachable through provideMerge, retries on the TestClock", () => {
    const TestDelegations = DelegationsLayer.layerCore({
      workspaceId: "ws-self",
      history: 100,
      timeout: Duration.seconds(300),
      mirrorTimeout: Duration.seconds(10),
      retrySchedule: DelegationsLayer.linearRetry(3, "5 seconds"),
      pollSchedule: DelegationsLayer.defaultPollSchedule
    }).pipe(Layer.provideMerge(Layer.mergeAll(
      // The first send finds the peer down, the retry gets the answer.
      A2ATransportTest.layer({ send: [A2ATransportTest.refused(), A2ATransportTest.message("42")] }),
      DiscoveryTest.layer({ "ws-peer": "http://peer.test/a2a" }),
      PlatformMirrorTest.layer(),
      AuditMemory.layer({ workspaceId: "ws-self" }),
      RbacTest.layer({ allow: true })
    )))

    // Run under @effect/vitest's it.effect, whose TestClock moves only when told to.
    const retriedThenAnswered = Effect.gen(function*() {
      const delegations = yield* Delegations
      const id = yield* delegations.delegate({ workspaceId: "ws-peer", task: "6 x 7?" })
      const waiting = yield* Effect.fork(delegations.await(id))
      yield* TestClock.adjust("5 seconds") // the retry's delay passes at once, no real waiting
      const done = yield* Fiber.join(waiting) // completed, result "42", attempts 2
      const sent = yield* Effect.flatMap(A2ATransportTest.A2ATransportTest, (peer) => peer.sent) // 2 requests
      const audit = yield* Effect.flatMap(AuditMemory.AuditMemory, (memory) => memory.records) // dispatched, success
      const updates = yield* Effect.flatMap(PlatformMirrorTest.PlatformMirrorTest, (platform) => platform.updates)
      return { done, sent, audit, updates }
    }).pipe(Effect.provide(TestDelegations))

    return Effect.map(retriedThenAnswered, ({ audit, done, sent, updates }) => {
      expect(done.status).toBe("completed")
      expect(done.result).toBe("42")
      expect(done.attempts).toBe(2)
      expect(sent).toHaveLength(2)
      expect(audit.map((record) => record.outcome)).toEqual(["dispatched", "success"])
      expect(updates.map((update) => update.status)).toEqual(["completed"])
    })
  })
})

describe("README: local platform and peers", () => {
  it.live("round trip through the local platform", () =>
    Effect.gen(function*() {
      const platform = yield* LocalPlatform.make()
      const peer = yield* LocalPeer.make({ behaviour: { reply: (task) => `echo: ${task}` } })
      const token = yield* platform.register({ id: "ws-me" })
      const peerId = "4a6b1c9e-2f3d-4e5a-8b7c-9d0e1f2a3b4c" // workspace ids on the platform are UUIDs
      yield* platform.register({ id: peerId, url: peer.url })
      const delegations = yield* Layer.build(
        DelegationsLayer.layer({ workspaceId: "ws-me", platformUrl: platform.url, platformToken: token })
      ).pipe(Effect.map(Context.get(Delegations)))
      const id = yield* delegations.delegate({ workspaceId: peerId, task: "ping" })
      return yield* delegations.await(id)
    }).pipe(
      Effect.scoped,
      Effect.provide(NodeHttpClient.layerUndici),
      Effect.map((done) => {
        expect(done.status).toBe("completed")
        expect(done.result).toBe("echo: ping")
      })
    ))
})

describe("README: platform dispatch against the local platform", () => {
  it.live("the platform sends the task; the result is its preview", () =>
    Effect.gen(function*() {
      const platform = yield* LocalPlatform.make({ heartbeatEvery: "1 second" })
      const peer = yield* LocalPeer.make({ protocol: "0.3", behaviour: { reply: (task) => `echo: ${task}` } })
      const token = yield* platform.register({ id: "ws-me" })
      const peerId = "4a6b1c9e-2f3d-4e5a-8b7c-9d0e1f2a3b4c" // the platform's /delegate takes workspace UUIDs
      yield* platform.register({ id: peerId, url: peer.url })
      const delegations = yield* Layer.build(
        DelegationsLayer.layer({
          workspaceId: "ws-me",
          platformUrl: platform.url,
          platformToken: token,
          dispatch: "platform",
          reconcileInterval: "100 millis"
        })
      ).pipe(Effect.map(Context.get(Delegations)))
      const id = yield* delegations.delegate({ workspaceId: peerId, task: "ping" })
      return yield* delegations.await(id) // completed, result "echo: ping", resultIsPreview true
    }).pipe(
      Effect.scoped,
      Effect.provide(NodeHttpClient.layerUndici),
      Effect.map((done) => {
        expect(done.status).toBe("completed")
        expect(done.result).toBe("echo: ping")
        expect(done.resultIsPreview).toBe(true)
        expect(done.dispatch).toBe("platform")
      })
    ))
})

describe("README: toolkit and tracing snippets", () => {
  it("the toolkit runtime and the tracing setup type-check", () => {
    // Stands in for the README's `declare const Model` (a provider's model).
    const Model: Layer.Layer<LanguageModel.LanguageModel> = Layer.effect(
      LanguageModel.LanguageModel,
      LanguageModel.make({ generateText: () => Effect.succeed([]), streamText: () => Stream.empty })
    )
    const runtime = ManagedRuntime.make(
      Layer.mergeAll(DelegationToolkitLive.layer, Model).pipe(Layer.provideMerge(NodeDelegationsLive))
    )
    const conversation = async () => {
      const chat = await runtime.runPromise(Chat.empty)
      await runtime.runPromise(
        chat.generateText({ prompt: "Ask ws-research for a summary of the Q3 report", toolkit: DelegationToolkit })
      )
      await runtime.runPromise(chat.generateText({ prompt: "Is the summary ready?", toolkit: DelegationToolkit }))
      await runtime.dispose()
    }
    const program = Effect.void
    const traced = program.pipe(Effect.provide(NodeDelegationsLive), Effect.provide(OtelNode.layerConfig("my-agent")))
    expect(typeof conversation).toBe("function")
    expect(Effect.isEffect(traced)).toBe(true)
  })

  it("performance: the platform's calls without client spans (trace.test.ts shows the spans that remain)", () => {
    const program = Effect.void
    // The README's snippet, verbatim, but for NodeRuntime.runMain.
    const platformUrl = "http://platform:8080" // your PLATFORM_URL
    const withoutPlatformSpans = <A, E, R>(program: Effect.Effect<A, E, R>) =>
      Effect.locally(program, HttpClient.currentTracerDisabledWhen, (request) =>
        // the platform's A2A proxy (proxy dispatch) stays traced
        request.url.startsWith(platformUrl) && !request.url.endsWith("/a2a"))

    const main = program.pipe(Effect.provide(NodeDelegationsLive), withoutPlatformSpans)
    expect(Effect.isEffect(main)).toBe(true)
  })
})
