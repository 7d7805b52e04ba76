/**
 * The toolkit in a chat loop, wired as the README wires it: one `ManagedRuntime` for the host, so
 * a delegation started in one turn is still there (and finished) in the next. A scripted language
 * model stands in for a provider: it calls `delegate_to_workspace` on the first turn and
 * `check_delegation_status` with the `task_id` it finds in the conversation on the second.
 */
import { Chat, LanguageModel } from "@effect/ai"
import type { Prompt, Response } from "@effect/ai"
import { describe, expect, it } from "@effect/vitest"
import { A2ATransportTest, Delegations } from "effect-a2a-delegation"
import { DelegationToolkit, DelegationToolkitLive } from "effect-a2a-delegation/ai"
import { Effect, Layer, ManagedRuntime, Stream } from "effect"
import { captureLogs } from "./fixtures/e2e.js"
import { PEER, testLayer } from "./fixtures/layers.js"

const usage = { inputTokens: 1, outputTokens: 1, totalTokens: 2 }

/** The text of the newest user message. */
const lastUserText = (prompt: Prompt.Prompt): string => {
  for (let i = prompt.content.length - 1; i >= 0; i--) {
    const message = prompt.content[i]!
    if (message.role !== "user") continue
    return message.content.map((part) => (part.type === "text" ? part.text : "")).join("")
  }
  return ""
}

/** The `task_id` of the newest `delegate_to_workspace` result in the conversation. */
const delegatedTaskId = (prompt: Prompt.Prompt): string | undefined => {
  let found: string | undefined
  for (const message of prompt.content) {
    if (message.role !== "tool") continue
    for (const part of message.content) {
      const result = part.result as { readonly task_id?: unknown }
      if (part.name === "delegate_to_workspace" && typeof result.task_id === "string") found = result.task_id
    }
  }
  return found
}

const toolCall = (id: string, name: string, params: unknown): ReadonlyArray<Response.PartEncoded> => [
  { type: "tool-call", id, name, params },
  { type: "finish", reason: "tool-calls", usage }
]

/** A model that delegates on "delegate: <task>" and checks on "check". */
const ScriptedModel = Layer.effect(
  LanguageModel.LanguageModel,
  LanguageModel.make({
    generateText: (options) =>
      Effect.sync(() => {
        const text = lastUserText(options.prompt)
        if (text.startsWith("delegate: ")) {
          return [...toolCall("call-1", "delegate_to_workspace", { workspace_id: PEER, task: text.slice(10) })]
        }
        const taskId = delegatedTaskId(options.prompt)
        if (text === "check" && taskId !== undefined) {
          return [...toolCall("call-2", "check_delegation_status", { task_id: taskId })]
        }
        return [{ type: "text", text: "nothing to do" }, { type: "finish", reason: "stop", usage }]
      }),
    streamText: () => Stream.empty
  })
)

const delegations = () => testLayer({ send: [A2ATransportTest.message("42")] })

const turn = (chat: Chat.Service, prompt: string) => chat.generateText({ prompt, toolkit: DelegationToolkit })

describe("the toolkit over one runtime", () => {
  it("two turns: the delegation started in the first completes before the second reads it", async () => {
    const runtime = ManagedRuntime.make(
      Layer.mergeAll(DelegationToolkitLive.layer, ScriptedModel).pipe(Layer.provideMerge(delegations()))
    )
    try {
      const chat = await runtime.runPromise(Chat.empty)
      const first = await runtime.runPromise(turn(chat, "delegate: 6 x 7?"))
      const started = first.toolResults[0]!
      expect(started.name).toBe("delegate_to_workspace")
      expect(started.result).toMatchObject({ success: true, status: "delegated" })
      const taskId = (started.result as { readonly task_id: string }).task_id

      // Between the turns the host does other work; the delegation runs on in the runtime.
      const done = await runtime.runPromise(Effect.flatMap(Delegations, (d) => d.await(taskId)))
      expect(done.status).toBe("completed")

      const second = await runtime.runPromise(turn(chat, "check"))
      expect(second.toolResults[0]!.result).toEqual({
        task_id: taskId,
        workspace_id: PEER,
        status: "completed",
        task: "6 x 7?",
        result: "42"
      })
    } finally {
      await runtime.dispose()
    }
  })

  it.effect("a Delegations layer provided per turn loses the delegation, and says so when it closes", () =>
    Effect.gen(function*() {
      const logs = captureLogs()
      // The mistake: the toolkit and its Delegations layer are built for each turn and closed after it.
      const perTurn = Layer.mergeAll(DelegationToolkitLive.layer, ScriptedModel).pipe(
        Layer.provideMerge(testLayer({ send: () => Effect.never }))
      )
      const chat = yield* Chat.empty
      const first = yield* turn(chat, "delegate: 6 x 7?").pipe(Effect.provide(perTurn), Effect.provide(logs.layer))
      expect(first.toolResults[0]!.result).toMatchObject({ success: true, status: "delegated" })
      expect(logs.lines.filter((line) => line.level === "WARN").map((line) => line.message)).toEqual([
        "the Delegations layer closed with 1 delegation(s) running; they end failed (interrupted). " +
        "Build the layer once for the whole host (ManagedRuntime.make, Layer.launch), not per request or chat turn"
      ])
      const second = yield* turn(chat, "check").pipe(Effect.provide(perTurn))
      expect(second.toolResults[0]!.result).toMatchObject({ error: expect.stringContaining("No delegation found") })
    }))
})
