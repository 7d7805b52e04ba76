/**
 * A host process for the demo's crash scene (demo/main.ts starts it from source with tsx's loader, then
 * kills it with SIGKILL). Configured from its environment as any host (`NodeDelegationsLive`, here with
 * `DELEGATION_STORE=sqlite:<file>`), it delegates `DEMO_TASK` to the workspace `DEMO_TARGET` and prints
 * the delegation, as `Delegation`'s JSON encoding, one line per state change. It runs until it is killed,
 * or until its stdin closes (the demo that started it is gone); it never exits on its own otherwise.
 * Its logs go to stderr, so that stdout carries only those lines.
 */
import { NodeRuntime, NodeStream } from "@effect/platform-node"
import { Delegation, Delegations } from "effect-a2a-delegation"
import { NodeDelegationsLive } from "effect-a2a-delegation/node"
import { Config, Console, Effect, Logger, LogLevel, Schema, Stream } from "effect"

const encode = Schema.encode(Delegation)

const program = Effect.gen(function*() {
  const delegations = yield* Delegations
  const workspaceId = yield* Config.string("DEMO_TARGET")
  const task = yield* Config.string("DEMO_TASK")
  const id = yield* delegations.delegate({ workspaceId, task })
  yield* delegations.watch(id).pipe(
    Stream.mapEffect(encode),
    Stream.runForEach((delegation) => Console.log(JSON.stringify(delegation)))
  )
  // Finished here (the demo kills it before that): stay, as a host does, until stdin closes.
  return yield* Effect.never
})

// Stdin ends when the demo that started this process exits, however it exits.
const orphaned = Stream.runDrain(NodeStream.fromReadable(() => process.stdin, (error) => error))

program.pipe(
  Effect.raceFirst(Effect.ignore(orphaned)),
  Effect.provide(NodeDelegationsLive),
  Effect.provide(Logger.replace(Logger.defaultLogger, Logger.withConsoleError(Logger.logfmtLogger))),
  Logger.withMinimumLogLevel(LogLevel.Warning),
  NodeRuntime.runMain({ disablePrettyLogger: true })
)
