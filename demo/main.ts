/**
 * `npm run demo`: the whole delegation flow on one machine, over real HTTP.
 *
 * Starts a local platform and three A2A peers in-process (fast, busy with
 * capacity 1, broken), delegates a scenario through `DelegationsLive` with proxy
 * dispatch, and shows the delegations as a table that updates while they move.
 * `npm run demo -- --json` prints the final delegations as JSON instead.
 */
import { FileSystem } from "@effect/platform"
import { NodeContext, NodeRuntime } from "@effect/platform-node"
import { Delegation, Delegations, DelegationsLive } from "effect-a2a-delegation"
import { NodeHttpClientPooled } from "effect-a2a-delegation/node"
import { OtelNode } from "effect-a2a-delegation/otel"
import { LocalPeer, LocalPlatform } from "effect-a2a-delegation/testing"
import { Clock, ConfigProvider, Console, Context, DateTime, Effect, Layer, Logger, LogLevel, Schema } from "effect"
import * as Os from "node:os"
import * as NodePath from "node:path"

const jsonMode = process.argv.includes("--json")
// `--otel` exports traces and metrics over OTLP/HTTP (OTEL_EXPORTER_OTLP_ENDPOINT, default localhost:4318).
const otel = process.argv.includes("--otel")
const otlpEndpoint = process.env["OTEL_EXPORTER_OTLP_ENDPOINT"] ?? "http://localhost:4318"
const auditPath = NodePath.join(Os.tmpdir(), "effect-a2a-delegation-demo", "audit.jsonl")
const tty = process.stdout.isTTY === true && !jsonMode

/** One line of the scenario: a delegation the runtime accepted, or a request it refused. */
type Row =
  | { readonly kind: "delegation"; readonly label: string; readonly id: string }
  | { readonly kind: "refused"; readonly label: string; readonly peer: string; readonly state: string; readonly error: string }

const color = (code: number) => (text: string) => (tty ? `\x1b[${code}m${text}\x1b[0m` : text)
const stateColor: Record<string, (text: string) => string> = {
  pending: color(90),
  in_progress: color(36),
  queued: color(33),
  completed: color(32),
  failed: color(31),
  denied: color(35),
  invalid: color(35)
}

const cut = (text: string, width: number) => (text.length <= width ? text : `${text.slice(0, width - 1)}…`)
const pad = (text: string, width: number) => text + " ".repeat(Math.max(0, width - text.length))

const elapsed = (delegation: Delegation, now: number) => {
  const start = DateTime.toEpochMillis(delegation.createdAt)
  const end = delegation.isFinished ? DateTime.toEpochMillis(delegation.updatedAt) : now
  return `${((end - start) / 1000).toFixed(1)}s`
}

const render = (rows: ReadonlyArray<Row>, byId: ReadonlyMap<string, Delegation>, now: number): string => {
  const header = ["#", "task", "peer", "state", "tries", "elapsed", "result / error"]
  const widths = [2, 24, 10, 11, 5, 7, 56]
  const lines = rows.map((row, index) => {
    if (row.kind === "refused") {
      return [String(index + 1), row.label, row.peer, row.state, "0", "-", row.error]
    }
    const d = byId.get(row.id)
    if (d === undefined) return [String(index + 1), row.label, "?", "?", "", "", ""]
    const detail = d.status === "completed"
      ? d.result ?? ""
      : d.status === "failed"
      ? d.error ?? ""
      : d.status === "queued"
      ? `${d.queueMessage ?? "queued"} (depth ${d.queueDepth ?? "?"})`
      : ""
    return [
      String(index + 1),
      row.label,
      d.workspaceId.replace(/^ws-/, ""),
      d.status,
      String(d.attempts),
      elapsed(d, now),
      detail.replace(/\s+/g, " ")
    ]
  })
  const format = (cells: ReadonlyArray<string>, colorize: boolean) =>
    cells.map((cell, i) => {
      const text = pad(cut(cell, widths[i]!), widths[i]!)
      return colorize && i === 3 ? (stateColor[cell] ?? ((t: string) => t))(text) : text
    }).join("  ")
  return [format(header, false), widths.map((w) => "-".repeat(w)).join("  "), ...lines.map((l) => format(l, true))]
    .join("\n")
}

const program = Effect.gen(function*() {
  const started = yield* Clock.currentTimeMillis

  // --- the world: one platform, three peers --------------------------------------------------
  const platform = yield* LocalPlatform.make()
  const fast = yield* LocalPeer.make({
    name: "fast",
    behaviour: { latency: "400 millis", reply: (task) => `answer to "${task}"` }
  })
  const busy = yield* LocalPeer.make({
    name: "busy",
    behaviour: { latency: "2500 millis", reply: (task) => `report on "${task}"` }
  })
  const broken = yield* LocalPeer.make({ name: "broken", behaviour: { drop: true } })

  const orchestratorToken = yield* platform.register({ id: "ws-orchestrator", name: "Orchestrator" })
  const internToken = yield* platform.register({ id: "ws-intern", name: "Intern" })
  yield* platform.register({ id: "ws-fast", url: fast.url, capacity: 4 })
  yield* platform.register({ id: "ws-busy", url: busy.url, capacity: 1 })
  yield* platform.register({ id: "ws-broken", url: broken.url, capacity: 4 })

  // --- two hosts configured through Config, as an agent would be through its environment ---------
  const host = (env: Record<string, string>) =>
    Layer.build(
      DelegationsLive.pipe(
        Layer.provide(Layer.merge(NodeHttpClientPooled.layer(), NodeContext.layer)),
        Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env)))))
      )
    ).pipe(Effect.map(Context.get(Delegations)))

  const fs = yield* FileSystem.FileSystem
  yield* fs.remove(auditPath, { force: true })
  const common = {
    PLATFORM_URL: platform.url,
    AUDIT_LOG_PATH: auditPath,
    A2A_VIA_PLATFORM_PROXY: "true",
    DELEGATION_RETRY_ATTEMPTS: "3",
    DELEGATION_RETRY_DELAY: "0.5",
    DELEGATION_TIMEOUT: "15"
  }
  const orchestrator = yield* host({ ...common, WORKSPACE_ID: "ws-orchestrator", PLATFORM_TOKEN: orchestratorToken })
  const intern = yield* host({
    ...common,
    WORKSPACE_ID: "ws-intern",
    PLATFORM_TOKEN: internToken,
    RBAC_ROLES: "read-only"
  })

  // --- the scenario ----------------------------------------------------------------------------
  const rows: Array<Row> = []
  const delegate = (
    who: Delegations["Type"],
    label: string,
    workspaceId: string,
    task: string
  ) =>
    who.delegate({ workspaceId, task }).pipe(
      Effect.match({
        onSuccess: (id): Row => ({ kind: "delegation", label, id }),
        onFailure: (error): Row => ({
          kind: "refused",
          label,
          peer: workspaceId.replace(/^ws-/, "") || "(none)",
          state: error._tag === "AccessDenied" ? "denied" : "invalid",
          error: error.message
        })
      }),
      Effect.map((row) => rows.push(row))
    )

  yield* delegate(orchestrator, "summarise the Q3 report", "ws-fast", "summarise the Q3 report")
  yield* delegate(orchestrator, "translate the memo", "ws-fast", "translate the memo to French")
  yield* delegate(orchestrator, "list open incidents", "ws-fast", "list open incidents")
  yield* delegate(orchestrator, "audit the ledger", "ws-busy", "audit the ledger")
  yield* delegate(orchestrator, "audit the payroll", "ws-busy", "audit the payroll")
  yield* delegate(orchestrator, "rebuild the index", "ws-broken", "rebuild the index")
  yield* delegate(intern, "intern delegates", "ws-fast", "anything at all")
  yield* delegate(orchestrator, "bad peer id", "ws busy; rm -rf /", "whatever")

  // --- watch them move ------------------------------------------------------------------------------
  const ids = rows.flatMap((row) => (row.kind === "delegation" ? [row.id] : []))
  // A terminal gets the table redrawn in place; a log (CI, a pipe) gets it again only when a state changes.
  let lastKey = ""
  let lines = 0
  const show = (frame: string, key: string) =>
    Effect.suspend(() => {
      if (jsonMode || (!tty && key === lastKey)) return Effect.void
      lastKey = key
      const clear = tty && lines > 0 ? `\x1b[${lines}F\x1b[J` : ""
      lines = frame.split("\n").length
      return Console.log(tty ? clear + frame : `${frame}\n`)
    })

  if (!jsonMode) {
    yield* Console.log(
      [
        "effect-a2a-delegation demo: a local platform and three A2A peers over loopback HTTP.",
        "  fast   answers in 0.4 s        busy   capacity 1, 2.5 s per task (the platform queues the overflow)",
        "  broken drops every connection  intern a second workspace whose role (read-only) may not delegate",
        ""
      ].join("\n")
    )
  }

  const snapshot = Effect.gen(function*() {
    const all = yield* orchestrator.list // also refreshes queued delegations from the platform
    const now = yield* Clock.currentTimeMillis
    const byId = new Map(all.map((d) => [d.id as string, d]))
    yield* show(render(rows, byId, now), all.map((d) => `${d.status}/${d.attempts}`).join(","))
    return { all, settled: ids.every((id) => byId.get(id)?.isFinished === true) }
  })
  type Snapshot = Effect.Effect.Success<typeof snapshot>
  const watch: Effect.Effect<Snapshot> = Effect.flatMap(
    snapshot,
    (s) => (s.settled ? Effect.succeed(s) : Effect.zipRight(Effect.sleep("200 millis"), Effect.suspend(() => watch)))
  )
  const final = yield* watch.pipe(
    Effect.timeoutFail({ duration: "18 seconds", onTimeout: () => "the scenario did not settle within 18 s" })
  )

  const finishedAt = yield* Clock.currentTimeMillis
  const refused = rows.flatMap((row) => (row.kind === "refused" ? [row] : []))
  if (jsonMode) {
    const delegations = yield* Schema.encode(Schema.Array(Delegation))(final.all)
    yield* Console.log(JSON.stringify(
      { delegations, refused: refused.map(({ error, label, peer, state }) => ({ label, peer, state, error })) },
      null,
      2
    ))
    return
  }
  const count = (status: string) => final.all.filter((d) => d.status === status).length
  const wasQueued = final.all.filter((d) => d.queueId !== undefined)
  const platformRows = yield* platform.rows
  yield* Console.log([
    "",
    `Done in ${((finishedAt - started) / 1000).toFixed(1)} s: ${final.all.length} delegations, ${refused.length} refused.`,
    `  completed ${count("completed")}  failed ${count("failed")}  queued ${count("queued")}  ` +
    `denied ${refused.filter((r) => r.state === "denied").length}  invalid ${
      refused.filter((r) => r.state === "invalid").length
    }`,
    ...wasQueued.map((d) =>
      `  ${d.task}: queued behind another task on "${d.workspaceId}", then ${d.status} once the platform drained its queue`
    ),
    `  audit trail: ${(yield* fs.readFileString(auditPath)).trim().split("\n").length} events in ${auditPath}`,
    ...(otel ? [`  traces and metrics exported to ${otlpEndpoint}`] : []),
    `  the platform holds ${platformRows.length} delegation rows; peers saw fast ${
      (yield* fast.requests).length
    }, busy ${(yield* busy.requests).length}, broken ${(yield* broken.requests).length} requests`
  ].join("\n"))
})

program.pipe(
  Effect.scoped,
  Effect.provide(Layer.mergeAll(
    NodeHttpClientPooled.layer(),
    NodeContext.layer,
    otel ? OtelNode.layer({ endpoint: otlpEndpoint, serviceName: "effect-a2a-delegation-demo" }) : Layer.empty
  )),
  // Audit events are log lines at Info; keep the table readable.
  Logger.withMinimumLogLevel(LogLevel.Warning),
  NodeRuntime.runMain
)
