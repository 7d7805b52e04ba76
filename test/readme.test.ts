/**
 * The README's examples, kept compiling and (where they need no network) running.
 */
import { NodeHttpClient } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import {
  A2ATransportTest,
  AuditMemory,
  Delegations,
  DelegationsLayer,
  DelegationsLive,
  DiscoveryTest,
  linearRetry,
  PlatformMirrorTest,
  RbacTest
} from "effect-a2a-delegation"
import { ConfigProvider, Console, Context, Duration, Effect, Layer, Schedule } from "effect"
import { LocalPeer, LocalPlatform } from "effect-a2a-delegation/testing"
import { Chat } from "@effect/ai"
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

  it.effect("testing without HTTP", () => {
    const TestDelegations = DelegationsLayer.layerCore({
      workspaceId: "ws-self",
      history: 100,
      timeout: Duration.seconds(300),
      mirrorTimeout: Duration.seconds(10),
      retrySchedule: linearRetry(3, "5 seconds"),
      pollSchedule: DelegationsLayer.defaultPollSchedule
    }).pipe(Layer.provide(Layer.mergeAll(
      A2ATransportTest.layer({ send: [A2ATransportTest.message("42")] }),
      DiscoveryTest.layer({ "ws-peer": "http://peer.test/a2a" }),
      PlatformMirrorTest.layer(),
      AuditMemory.layer({ workspaceId: "ws-self" }),
      RbacTest.layer({ allow: true })
    )))

    const answer = Effect.gen(function*() {
      const delegations = yield* Delegations
      const id = yield* delegations.delegate({ workspaceId: "ws-peer", task: "6 x 7?" })
      return (yield* delegations.await(id)).result
    }).pipe(Effect.provide(TestDelegations))

    return Effect.map(answer, (result) => expect(result).toBe("42"))
  })
})

describe("README: local platform and peers", () => {
  it.live("round trip through the local platform", () =>
    Effect.gen(function*() {
      const platform = yield* LocalPlatform.make()
      const peer = yield* LocalPeer.make({ behaviour: { reply: (task) => `echo: ${task}` } })
      const token = yield* platform.register({ id: "ws-me" })
      yield* platform.register({ id: "ws-peer", url: peer.url })
      const delegations = yield* Layer.build(
        DelegationsLayer.layer({ workspaceId: "ws-me", platformUrl: platform.url, platformToken: token })
      ).pipe(Effect.map(Context.get(Delegations)))
      const id = yield* delegations.delegate({ workspaceId: "ws-peer", task: "ping" })
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

describe("README: toolkit and tracing snippets", () => {
  it("the chat turn and the tracing setup type-check", () => {
    const turn = Effect.gen(function*() {
      const chat = yield* Chat.empty
      return yield* chat.generateText({
        prompt: "Ask ws-research for a summary of the Q3 report",
        toolkit: DelegationToolkit
      })
    })
    const Tools = DelegationToolkitLive.layer.pipe(Layer.provide(NodeDelegationsLive))
    const withTools = turn.pipe(Effect.provide(Tools))
    const program = Effect.void
    const traced = program.pipe(Effect.provide(NodeDelegationsLive), Effect.provide(OtelNode.layerConfig("my-agent")))
    expect(Effect.isEffect(withTools)).toBe(true)
    expect(Effect.isEffect(traced)).toBe(true)
  })
})
