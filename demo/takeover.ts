/**
 * The demo's crash scene: host A, a separate process (demo/host.ts, run from source with tsx's loader),
 * delegates a slow task with `DELEGATION_STORE=sqlite:<file>`; once the peer's task is working, A is
 * killed with SIGKILL. Host B, built in the demo's own process over the same file (the next process on
 * it), claims the delegation when A's lease lapses and follows the peer's task to its end, without
 * sending it again. The file lives in a temporary directory removed when the demo ends.
 */
import { Command, FileSystem } from "@effect/platform"
import type { Delegations } from "effect-a2a-delegation"
import { Delegation } from "effect-a2a-delegation"
import { Clock, Deferred, Effect, Option, Ref, Schema, Stream } from "effect"
import * as NodePath from "node:path"
import { fileURLToPath } from "node:url"

/** `DELEGATION_REPLICA_ID` of the host that is killed (a child process). */
export const REPLICA_A = "ops-a"
/** `DELEGATION_REPLICA_ID` of the host that finishes its delegation (in the demo's process). */
export const REPLICA_B = "ops-b"

/** What the scene knows so far. */
export interface Takeover {
  /** The SQLite file both hosts open (in a temporary directory removed with the scope). */
  readonly file?: string | undefined
  /** Host A's process id, once it was spawned. */
  readonly pid?: number | undefined
  /** Host A's last report of its delegation (from its stdout). */
  readonly reported?: Delegation | undefined
  /** When host A was killed (epoch milliseconds). */
  readonly killedAt?: number | undefined
  /** Host B, once it was built over the file. */
  readonly survivor?: Delegations["Type"] | undefined
  /** Why the scene could not be played to its end. */
  readonly error?: string | undefined
}

export interface Options<E, R> {
  /** The environment both hosts share: WORKSPACE_ID, PLATFORM_URL, PLATFORM_TOKEN, ... */
  readonly env: Readonly<Record<string, string>>
  /** The peer workspace and the task host A delegates to it. */
  readonly target: string
  readonly task: string
  /** `DELEGATION_LEASE`, in seconds. */
  readonly lease: number
  /** Builds host B from its environment, for the rest of the scope. */
  readonly survivor: (env: Readonly<Record<string, string>>) => Effect.Effect<Delegations["Type"], E, R>
}

const root = fileURLToPath(new URL("..", import.meta.url))
const hostScript = fileURLToPath(new URL("./host.ts", import.meta.url))
const decodeLine = Schema.decodeUnknownOption(Schema.parseJson(Delegation))

/** Whatever went wrong, as one line of text. */
const describe = (error: unknown): string =>
  typeof error === "string"
    ? error
    : error !== null && typeof error === "object" && "message" in error && typeof error.message === "string"
    ? error.message
    : String(error)

/**
 * Starts the scene in the background, in the caller's scope (which owns host A's process, the
 * temporary directory and host B), and returns its state. A scene that cannot go on records why in
 * `error` instead of failing.
 */
export const start = <E, R>(options: Options<E, R>) =>
  Effect.gen(function*() {
    const state = yield* Ref.make<Takeover>({})
    const set = (patch: Partial<Takeover>) => Ref.update(state, (s) => ({ ...s, ...patch }))
    const fs = yield* FileSystem.FileSystem

    const scene = Effect.gen(function*() {
      const dir = yield* fs.makeTempDirectoryScoped({ prefix: "effect-a2a-delegation-demo-sqlite-" })
      const file = NodePath.join(dir, "delegations.db")
      yield* set({ file })
      const env = {
        ...options.env,
        DELEGATION_STORE: `sqlite:${file}`,
        DELEGATION_LEASE: String(options.lease)
      }
      // `node --import tsx`: one process, the host itself, run from the sources (tsconfig paths, from `root`).
      const child = yield* Command.make(process.execPath, "--import", import.meta.resolve("tsx"), hostScript).pipe(
        Command.env({ ...env, DELEGATION_REPLICA_ID: REPLICA_A, DEMO_TARGET: options.target, DEMO_TASK: options.task }),
        Command.workingDirectory(root),
        Command.start
      )
      yield* set({ pid: child.pid })

      let stderr = ""
      yield* child.stderr.pipe(
        Stream.decodeText(),
        Stream.runForEach((text) => Effect.sync(() => (stderr = (stderr + text).slice(-2000)))),
        Effect.ignore,
        Effect.forkScoped
      )
      // Host A is killed once the peer has answered with a working task: its id is in the file.
      const working = yield* Deferred.make<Delegation, string>()
      yield* child.stdout.pipe(
        Stream.decodeText(),
        Stream.splitLines,
        Stream.filterMap(decodeLine),
        Stream.runForEach((delegation) =>
          Effect.zipRight(
            set({ reported: delegation }),
            delegation.isFinished
              ? Deferred.fail(working, `host A finished it (${delegation.status}) before it could be killed`)
              : delegation.taskId !== undefined
              ? Deferred.succeed(working, delegation)
              : Effect.void
          )
        ),
        Effect.ignore,
        Effect.forkScoped
      )
      // It exits only when killed: an earlier exit is a failure, told with what it wrote to stderr.
      const exited = child.exitCode.pipe(
        Effect.either,
        Effect.flatMap((exit) =>
          Effect.fail(
            `host A exited (${exit._tag === "Right" ? `code ${exit.right}` : describe(exit.left)}) before the peer's ` +
              `task was working: ${stderr.trim() || "no output"}`
          )
        )
      )
      yield* Deferred.await(working).pipe(
        Effect.raceFirst(exited),
        Effect.timeoutFail({ duration: "15 seconds", onTimeout: () => "the peer's task was not working within 15 s" })
      )
      yield* child.kill("SIGKILL")
      yield* set({ killedAt: yield* Clock.currentTimeMillis })
      // The next process on the file: it claims what A ran once A's lease has lapsed.
      yield* set({ survivor: yield* options.survivor({ ...env, DELEGATION_REPLICA_ID: REPLICA_B }) })
    })

    yield* scene.pipe(
      Effect.catchAll((error) => set({ error: describe(error) })),
      Effect.forkScoped
    )
    return state
  })

/** The delegation as it stands now: read from the file by host B once it runs, from host A's reports before. */
export const current = (takeover: Takeover): Effect.Effect<Option.Option<Delegation>> => {
  const reported = Option.fromNullable(takeover.reported)
  if (takeover.survivor === undefined || takeover.reported === undefined) return Effect.succeed(reported)
  return takeover.survivor.status(takeover.reported.id).pipe(
    Effect.option,
    Effect.map((read) => Option.orElse(read, () => reported))
  )
}

/** True once the scene has nothing more to show: host B finished the delegation, or the scene broke. */
export const isOver = (takeover: Takeover, delegation: Option.Option<Delegation>): boolean =>
  takeover.error !== undefined ||
  (takeover.survivor !== undefined && Option.exists(delegation, (d) => d.isFinished))

/** The row's detail: who runs the delegation, and what became of it. */
export const detail = (takeover: Takeover, delegation: Option.Option<Delegation>, lease: number, started: number): string => {
  if (takeover.error !== undefined) return `the crash scene broke: ${takeover.error}`
  const a = takeover.pid === undefined ? "host A" : `host A (pid ${takeover.pid})`
  if (takeover.killedAt === undefined) {
    return Option.isNone(delegation)
      ? `starting ${a}, a separate process on a SQLite file, from source`
      : `on ${a}, a separate process on a SQLite file; it is killed once the peer's task is working`
  }
  const killed = `${a} killed with SIGKILL at ${((takeover.killedAt - started) / 1000).toFixed(1)}s`
  const d = Option.getOrUndefined(delegation)
  if (takeover.survivor === undefined || d === undefined || !d.isFinished) {
    return `${killed}; host B (demo process, same SQLite file) takes it over once A's ${lease} s lease lapses`
  }
  const outcome = d.status === "completed" ? d.result ?? "" : d.error ?? d.status
  return `${killed}; host B ${d.status === "completed" ? "finished" : "ended"} it (demo process, same SQLite file): ${outcome}`
}
