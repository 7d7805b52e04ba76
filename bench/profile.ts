/**
 * `node --cpu-prof dist-bench/profile.js [n] [rounds]`: library rounds only, for profiling.
 */
import { Context, Effect, Layer, Logger, LogLevel } from "effect"
import { Delegations, DelegationsLayer } from "effect-a2a-delegation"
import { NodeHttpClientPooled } from "effect-a2a-delegation/node"
import { spawn } from "node:child_process"
import * as Readline from "node:readline"

const n = Number(process.argv[2] ?? 2000)
const rounds = Number(process.argv[3] ?? 5)

const main = async () => {
  const child = spawn(process.execPath, [new URL("./server.js", import.meta.url).pathname], {
    stdio: ["ignore", "pipe", "inherit"]
  })
  const port = await new Promise<number>((resolve) =>
    Readline.createInterface({ input: child.stdout! }).once("line", (line) => resolve((JSON.parse(line) as { port: number }).port))
  )
  const layer = DelegationsLayer.layer({ workspaceId: "ws-bench", platformUrl: `http://127.0.0.1:${port}`, platformToken: "t" })
    .pipe(Layer.provide(NodeHttpClientPooled.layer()))
  await Effect.runPromise(
    Effect.gen(function*() {
      const delegations = yield* Effect.map(Layer.build(layer), Context.get(Delegations))
      for (let round = 0; round < rounds; round++) {
        const start = performance.now()
        yield* Effect.forEach(
          Array.from({ length: n }, (_, i) => i),
          (i) => Effect.flatMap(delegations.delegate({ workspaceId: "ws-peer", task: `task ${i}` }), delegations.await),
          { concurrency: "unbounded", discard: true }
        )
        console.log(`${n} delegations: ${Math.round(n / ((performance.now() - start) / 1000))}/s`)
      }
    }).pipe(Effect.scoped, Effect.orDie, Logger.withMinimumLogLevel(LogLevel.Warning))
  )
  child.kill()
}

void main()
