/**
 * `npm run demo`: the whole delegation flow on one machine, over real HTTP.
 *
 * Starts a local platform (faithful to the real one: its queue drains one item per
 * heartbeat of the target, here every second) and six A2A peers in-process (fast:
 * A2A 1.0 only; legacy: v0.3 only; busy: v0.3 with capacity 1; broken; slow: a 4 s task;
 * writer: a streaming 1.0 peer, demo/streaming.ts, whose progress notes the table shows), delegates a
 * scenario through `DelegationsLive` hosts, one dispatching directly (`A2A_PROTOCOL`
 * auto, so each peer gets its own version), one handing its delegations to the platform
 * (`DELEGATION_DISPATCH=platform`: a queued one comes back through the platform's list)
 * and one through the platform proxy (pinned to 0.3, since the proxy does not forward
 * `A2A-Version`: its queued delegation is delivered, but its reply never comes back, so
 * it fails at `DELEGATION_QUEUED_TIMEOUT`), and shows the delegations as a table that
 * updates while they move; its peer column names the version spoken. One more host, a separate
 * process on a SQLite file (demo/takeover.ts), is killed with SIGKILL while its delegation runs, and a
 * host in this process over the same file finishes it.
 * `npm run -s demo -- --json` prints the final rows as JSON instead.
 */
import { FileSystem, HttpBody, HttpClient } from "@effect/platform"
import { NodeContext, NodeRuntime } from "@effect/platform-node"
import { Delegation, Delegations, DelegationsLive } from "effect-a2a-delegation"
import { NodeHttpClientPooled } from "effect-a2a-delegation/node"
import { OtelNode } from "effect-a2a-delegation/otel"
import { LocalPeer, LocalPlatform } from "effect-a2a-delegation/testing"
import {
  Clock,
  Config,
  ConfigProvider,
  Console,
  Context,
  DateTime,
  Effect,
  Layer,
  Logger,
  LogLevel,
  Option,
  type ParseResult,
  Ref,
  Schedule,
  Schema
} from "effect"
import * as NodePath from "node:path"
import { colorEnabled, redraw, renderTable, screenRows, type TableRow, wrapIndented } from "./table.js"
import * as Streaming from "./streaming.js"
import * as Takeover from "./takeover.js"

const jsonMode = process.argv.includes("--json")
// `--otel` exports traces and metrics over OTLP/HTTP (OTEL_EXPORTER_OTLP_ENDPOINT, default localhost:4318).
const otel = process.argv.includes("--otel")
const tty = process.stdout.isTTY === true && !jsonMode
// Width for a log or a pipe, where there is no terminal to ask.
const LOG_WIDTH = 120
const otlpEndpoint = Config.string("OTEL_EXPORTER_OTLP_ENDPOINT").pipe(Config.withDefault("http://localhost:4318"))

/** One line of the scenario: a delegation the runtime accepted, or a request it refused. */
type Row =
  | { readonly kind: "delegation"; readonly label: string; readonly host: string; readonly id: string }
  /** The crash scene's delegation: its id is host A's, known once that process has started it. */
  | { readonly kind: "takeover"; readonly label: string; readonly host: string }
  | {
    readonly kind: "refused"
    readonly label: string
    readonly host: string
    readonly workspaceId: string
    readonly task: string
    readonly status: "denied" | "invalid"
    readonly error: string
  }

// The platform takes only workspace UUIDs as targets (discovery, record and /delegate).
const FAST = "f0000000-5c4e-4d11-8a2e-0000000f0057"
const LEGACY = "1e000000-5c4e-4d11-8a2e-00000001e6ac"
const BUSY = "b0b0b0b0-5c4e-4d11-8a2e-00000000b05e"
const BROKEN = "b0000000-5c4e-4d11-8a2e-0000000b0e4e"
const SLOW = "5e0e0000-5c4e-4d11-8a2e-00000000510e"
const WRITER = Streaming.WORKSPACE
const names = new Map([
  [FAST, "fast"],
  [LEGACY, "legacy"],
  [BUSY, "busy"],
  [BROKEN, "broken"],
  [SLOW, "slow"],
  [WRITER, "writer"]
])

// The crash scene: a short lease, so that host B takes over within the demo's time.
const LEASE_SECONDS = 2
const TAKEOVER_HOST = `ws-ops: ${Takeover.REPLICA_A} (child process, killed) → ${Takeover.REPLICA_B} (demo process)`

const peerName = (workspaceId: string) => names.get(workspaceId) ?? (workspaceId.replace(/^ws-/, "") || "(none)")

const elapsed = (delegation: Delegation, now: number) => {
  const start = DateTime.toEpochMillis(delegation.createdAt)
  const end = delegation.isFinished ? DateTime.toEpochMillis(delegation.updatedAt) : now
  return `${((end - start) / 1000).toFixed(1)}s`
}

/** The crash scene as the table shows it: its state, its delegation now, and when the demo started. */
interface Scene {
  readonly state: Takeover.Takeover
  readonly delegation: Option.Option<Delegation>
  readonly started: number
}

const tableRows = (
  rows: ReadonlyArray<Row>,
  byId: ReadonlyMap<string, Delegation>,
  now: number,
  scene: Scene,
  writer: Streaming.Requests
) =>
  rows.map((row): TableRow => {
    if (row.kind === "refused") {
      return { task: row.label, peer: peerName(row.workspaceId), state: row.status, tries: 0, detail: row.error }
    }
    if (row.kind === "takeover") {
      const detail = Takeover.detail(scene.state, scene.delegation, LEASE_SECONDS, scene.started)
      const d = Option.getOrUndefined(scene.delegation)
      const state = scene.state.error !== undefined ? "failed" : d?.status ?? "pending"
      // Who started it and who finished it is what the row is read for: room for it at 80 columns.
      if (d === undefined) return { task: row.label, peer: peerName(SLOW), state, detail, detailLines: 3 }
      return {
        task: row.label,
        peer: peerName(d.workspaceId),
        version: d.protocolVersion,
        state,
        tries: d.attempts,
        elapsed: elapsed(d, now),
        detail,
        detailLines: 3
      }
    }
    const d = byId.get(row.id)
    if (d === undefined) return { task: row.label, peer: "?", state: "pending" }
    const common = {
      task: row.label,
      peer: peerName(d.workspaceId),
      // Set by the first request sent, so a pending row has none.
      version: d.protocolVersion,
      state: d.status,
      tries: d.attempts,
      elapsed: elapsed(d, now)
    }
    // The streaming row: its progress note, the drop, the text so far; room for them at 80 columns.
    if (d.workspaceId === WRITER) return { ...common, detail: Streaming.detail(d, writer), detailLines: 3 }
    return {
      ...common,
      detail: d.status === "completed"
        ? d.result
        : d.status === "failed" || d.status === "cancelled"
        ? d.error
        : d.status === "queued"
        ? d.queueMessage ?? "the platform queued it behind a busy peer"
        : d.status === "in_progress" && d.dispatch === "platform"
        ? "handed to the platform"
        : undefined,
      queueDepth: d.status === "queued" ? d.queueDepth : undefined
    }
  })

/**
 * Whether an OTLP/HTTP collector accepts exports at the endpoint: an empty
 * export request to `/v1/traces` and `/v1/metrics`, as the exporters send them.
 * `OtelNode.layer` does not report its exporters' results, and its last export
 * runs at shutdown, after the summary; the probe is what the summary can know.
 */
const probeCollector = (endpoint: string) =>
  Effect.gen(function*() {
    const client = yield* HttpClient.HttpClient
    const base = endpoint.replace(/\/+$/, "")
    const post = (path: string, body: unknown) =>
      client.post(`${base}${path}`, { body: HttpBody.unsafeJson(body) }).pipe(
        Effect.flatMap((response) =>
          Effect.zipRight(
            Effect.ignore(response.text), // drain it, so the pooled connection is free again
            response.status >= 200 && response.status < 300
              ? Effect.void
              : Effect.fail(`HTTP ${response.status} from ${path}`)
          )
        ),
        Effect.timeoutFail({ duration: "3 seconds", onTimeout: () => `no answer from ${path} within 3 s` })
      )
    yield* post("/v1/traces", { resourceSpans: [] })
    yield* post("/v1/metrics", { resourceMetrics: [] })
  }).pipe(
    Effect.mapError((error) => typeof error === "string" ? error : reasonOf(error)),
    Effect.either
  )

// The innermost cause says most ("connect ECONNREFUSED 127.0.0.1:4318"), the outer message least.
const reasonOf = (error: unknown): string => {
  let current: unknown = error
  let reason = String(error)
  for (let depth = 0; depth < 5 && current !== null && typeof current === "object"; depth++) {
    const { cause, code, message } = current as { cause?: unknown; code?: unknown; message?: unknown }
    if (typeof message === "string" && message !== "") reason = message
    if (code === "ECONNREFUSED") return "connection refused (is a collector listening?)"
    current = cause
  }
  return reason
}

const program = Effect.gen(function*() {
  const started = yield* Clock.currentTimeMillis
  const color = colorEnabled(tty, yield* Config.string("NO_COLOR").pipe(Config.withDefault("")))
  // Re-read at every use: the terminal may have been resized since the last frame.
  const width = () => (tty ? process.stdout.columns ?? 80 : LOG_WIDTH)
  const say = (lines: ReadonlyArray<string>) =>
    Console.log(lines.flatMap((line) => wrapIndented(line, width(), 4)).join("\n"))

  // --- the world: one platform, six peers, each with the agent card of its version -----------------
  // Workspaces heartbeat every 30 s on the real platform; every second here, to keep the demo short.
  const platform = yield* LocalPlatform.make({ heartbeatEvery: "1 second" })
  const fast = yield* LocalPeer.make({
    name: "fast",
    protocol: "1.0", // strict, as @a2a-js/sdk 1.x by default: a request without `A2A-Version: 1.0` gets -32009
    behaviour: { latency: "400 millis", reply: (task) => `answer to "${task}"` }
  })
  const legacy = yield* LocalPeer.make({
    name: "legacy",
    protocol: "0.3", // an old peer: `SendMessage` gets -32601
    behaviour: { latency: "600 millis", reply: (task) => `notes on "${task}"` }
  })
  // Reached through the proxy only, which drops `A2A-Version`: a strict 1.0 peer would refuse every request.
  const busy = yield* LocalPeer.make({
    name: "busy",
    protocol: "0.3",
    behaviour: { latency: "2500 millis", reply: (task) => `report on "${task}"` }
  })
  const broken = yield* LocalPeer.make({ name: "broken", protocol: "1.0", behaviour: { drop: true } })
  // Answers with a Task that works for 4 s: long enough to kill the host that sent it, mid-task.
  const slow = yield* LocalPeer.make({
    name: "slow",
    protocol: "1.0",
    behaviour: { result: "task", latency: "4 seconds", reply: (task) => `settled "${task}"` }
  })
  // Streams (its card says so): a progress note every 1.2 s, then its text in chunks; it drops the stream once.
  const writer = yield* LocalPeer.make({ name: "writer", protocol: "1.0", behaviour: { stream: Streaming.SCRIPT } })

  const orchestratorToken = yield* platform.register({ id: "ws-orchestrator", name: "Orchestrator" })
  const schedulerToken = yield* platform.register({ id: "ws-scheduler", name: "Scheduler" })
  const internToken = yield* platform.register({ id: "ws-intern", name: "Intern" })
  const dispatcherToken = yield* platform.register({ id: "ws-dispatcher", name: "Dispatcher" })
  const opsToken = yield* platform.register({ id: "ws-ops", name: "Ops" })
  yield* platform.register({ id: FAST, name: "fast", url: fast.url, capacity: 4 })
  yield* platform.register({ id: LEGACY, name: "legacy", url: legacy.url, capacity: 4 })
  yield* platform.register({ id: BUSY, name: "busy", url: busy.url, capacity: 1 })
  yield* platform.register({ id: BROKEN, name: "broken", url: broken.url, capacity: 4 })
  yield* platform.register({ id: SLOW, name: "slow", url: slow.url, capacity: 4 })
  yield* platform.register({ id: WRITER, name: "writer", url: writer.url, capacity: 4 })

  // --- three hosts configured through Config, as an agent would be through its environment -------
  const host = (env: Record<string, string>) =>
    Layer.build(
      DelegationsLive.pipe(
        Layer.provide(Layer.merge(NodeHttpClientPooled.layer(), NodeContext.layer)),
        Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env)))))
      )
    ).pipe(Effect.map(Context.get(Delegations)))

  const fs = yield* FileSystem.FileSystem
  // A directory of its own per run, so two demos at once do not write into one audit file.
  const runDir = yield* fs.makeTempDirectory({ prefix: "effect-a2a-delegation-demo-" })
  const auditPath = NodePath.join(runDir, "audit.jsonl")
  const common = {
    PLATFORM_URL: platform.url,
    AUDIT_LOG_PATH: auditPath,
    DELEGATION_RETRY_ATTEMPTS: "3",
    DELEGATION_RETRY_DELAY: "0.5",
    DELEGATION_TIMEOUT: "15"
  }
  // Host A, a separate process on a SQLite file, goes first: it takes a few seconds to load from source.
  const scene = yield* Takeover.start({
    env: { ...common, WORKSPACE_ID: "ws-ops", PLATFORM_TOKEN: opsToken },
    target: SLOW,
    task: "reconcile the accounts",
    lease: LEASE_SECONDS,
    survivor: host
  })
  // Direct dispatch, A2A_PROTOCOL auto (the default): each peer's agent card picks its version.
  const orchestrator = yield* host({ ...common, WORKSPACE_ID: "ws-orchestrator", PLATFORM_TOKEN: orchestratorToken })
  // Platform dispatch: the platform sends, queues behind a busy peer, and keeps the outcome in its list.
  const scheduler = yield* host({
    ...common,
    WORKSPACE_ID: "ws-scheduler",
    PLATFORM_TOKEN: schedulerToken,
    DELEGATION_DISPATCH: "platform",
    DELEGATION_RECONCILE_INTERVAL: "0.25",
    DELEGATION_RECONCILE_MAX_INTERVAL: "1"
  })
  // Proxy dispatch, so a busy peer's overflow is queued; auto speaks 0.3 there, as the proxy drops `A2A-Version`.
  // Nothing brings a proxied request's reply back to a queued delegation, so a short deadline ends it.
  const dispatcher = yield* host({
    ...common,
    WORKSPACE_ID: "ws-dispatcher",
    PLATFORM_TOKEN: dispatcherToken,
    DELEGATION_DISPATCH: "proxy",
    DELEGATION_QUEUED_TIMEOUT: "10",
    DELEGATION_RECONCILE_INTERVAL: "0.25",
    DELEGATION_RECONCILE_MAX_INTERVAL: "1"
  })
  const intern = yield* host({
    ...common,
    WORKSPACE_ID: "ws-intern",
    PLATFORM_TOKEN: internToken,
    RBAC_ROLES: "read-only"
  })
  const hostName = new Map<Delegations["Type"], string>([
    [orchestrator, "ws-orchestrator"],
    [scheduler, "ws-scheduler"],
    [dispatcher, "ws-dispatcher"],
    [intern, "ws-intern"]
  ])

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
        onSuccess: (id): Row => ({ kind: "delegation", label, host: hostName.get(who)!, id }),
        onFailure: (error): Row => ({
          kind: "refused",
          label,
          host: hostName.get(who)!,
          workspaceId,
          task,
          status: error._tag === "AccessDenied" ? "denied" : "invalid",
          error: error.message
        })
      }),
      Effect.map((row) => rows.push(row))
    )

  yield* delegate(orchestrator, "summarise the Q3 report", FAST, "summarise the Q3 report")
  yield* delegate(orchestrator, "translate the memo", FAST, "translate the memo to French")
  yield* delegate(orchestrator, "list open incidents", LEGACY, "list open incidents")
  yield* delegate(orchestrator, Streaming.TASK, WRITER, Streaming.TASK)
  yield* delegate(scheduler, "audit the ledger", BUSY, "audit the ledger")
  // Once the busy peer works on the ledger (however loaded the machine), the next two find it busy.
  yield* busy.active.pipe(
    Effect.repeat({ schedule: Schedule.spaced("20 millis"), until: (active) => active > 0 }),
    Effect.timeoutOption("5 seconds")
  )
  yield* delegate(scheduler, "audit the payroll", BUSY, "audit the payroll")
  yield* Effect.sleep("150 millis")
  yield* delegate(dispatcher, "audit the expenses", BUSY, "audit the expenses")
  yield* delegate(orchestrator, "rebuild the index", BROKEN, "rebuild the index")
  rows.push({ kind: "takeover", label: "reconcile the accounts", host: TAKEOVER_HOST })
  yield* delegate(intern, "intern delegates", FAST, "anything at all")
  yield* delegate(orchestrator, "bad peer id", "ws busy; rm -rf /", "whatever")

  // --- watch them move ------------------------------------------------------------------------------
  const ids = rows.flatMap((row) => (row.kind === "delegation" ? [row.id] : []))
  // The streaming delegation's progress notes and partial results, as the host's `watch` emits them.
  const streamed = rows.find((row) => row.kind === "delegation" && row.label === Streaming.TASK)
  const writerWatch = streamed?.kind === "delegation"
    ? yield* Streaming.watchProgress(orchestrator, streamed.id)
    : undefined
  // A terminal gets the table redrawn in place; a log (CI, a pipe) gets it again only when a state changes.
  let lastKey = ""
  let previous: ReadonlyArray<string> = []
  // `streaming` is what the streaming row shows as it runs: a log gets the table again for each change of it.
  const show = (table: ReadonlyArray<TableRow>, streaming: string) =>
    Effect.suspend(() => {
      if (jsonMode) return Effect.void
      if (!tty) {
        const key = `${table.map((row) => `${row.state}/${row.tries}`).join(",")}/${streaming}`
        if (key === lastKey) return Effect.void
        lastKey = key
        return Console.log(`${renderTable(table, { width: LOG_WIDTH, color: false }).join("\n")}\n`)
      }
      const columns = width()
      // One row short of the screen: the cursor ends on the row below the frame, and all of it must stay on screen.
      const frame = renderTable(table, { width: columns, height: (process.stdout.rows ?? 24) - 1, color })
      // The previous frame's lines never wrapped when printed; after a narrowing resize they may have reflowed.
      const rowsBack = screenRows(previous, columns)
      previous = frame
      return Effect.sync(() => process.stdout.write(redraw(rowsBack, frame)))
    })

  if (!jsonMode) {
    yield* say([
      "effect-a2a-delegation demo: a platform and six A2A peers over loopback HTTP.",
      "  fast          A2A 1.0 only, answers in 0.4 s",
      "  legacy        A2A v0.3 only, answers in 0.6 s",
      "  busy          A2A v0.3 only, capacity 1, 2.5 s per task (overflow is queued, drained on heartbeats)",
      "  broken        drops every connection",
      "  slow          A2A 1.0, answers with a task that works for 4 s",
      `  writer        A2A 1.0, streams (its card says so): ${Streaming.SCRIPT.updates.length} progress notes 1.2 s ` +
      `apart, then its text in ${Streaming.SCRIPT.chunks.length} chunks; it drops the stream once, mid-way`,
      "and the workspaces that delegate to them:",
      "  orchestrator  directly to fast, legacy, broken and writer, A2A_PROTOCOL=auto",
      "  scheduler     to busy by the platform (DELEGATION_DISPATCH=platform): queued, then read from its list",
      "  dispatcher    to busy through the platform proxy (DELEGATION_DISPATCH=proxy, so 0.3)",
      "  intern        a workspace whose role (read-only) may not delegate",
      `  ops           to slow, on a SQLite file (DELEGATION_STORE=sqlite:<tmp>, DELEGATION_LEASE=${LEASE_SECONDS}): ` +
      `host A, a separate process, is killed with SIGKILL mid-task; host B, in this process, opens the same file ` +
      `and finishes the delegation`,
      ""
    ])
  }

  const seenQueued = new Set<string>()
  const snapshot = Effect.gen(function*() {
    // Each host lists its own; each host's reconciler follows what waits on the platform.
    const listed = (yield* Effect.orDie(Effect.all([orchestrator.list, scheduler.list, dispatcher.list]))).flat()
    const takeover = yield* Ref.get(scene)
    const taken = yield* Takeover.current(takeover)
    const all = [...listed, ...Option.toArray(taken)]
    const now = yield* Clock.currentTimeMillis
    const byId = new Map(all.map((d) => [d.id as string, d]))
    for (const d of all) if (d.status === "queued") seenQueued.add(d.id)
    const writerRequests = Streaming.requests((yield* writer.requests).map((r) => r.method))
    const writing = all.find((d) => d.workspaceId === WRITER)
    yield* show(
      tableRows(rows, byId, now, { state: takeover, delegation: taken, started }, writerRequests),
      `${writing?.progress ?? ""}/${writerRequests.resubscribes}/${writing?.partialResult?.length ?? 0}`
    )
    return {
      all,
      byId,
      takeover,
      taken,
      settled: ids.every((id) => byId.get(id)?.isFinished === true) && Takeover.isOver(takeover, taken)
    }
  })
  type Snapshot = Effect.Effect.Success<typeof snapshot>
  const watch: Effect.Effect<Snapshot> = Effect.flatMap(
    snapshot,
    (s) => (s.settled ? Effect.succeed(s) : Effect.zipRight(Effect.sleep("200 millis"), Effect.suspend(() => watch)))
  )
  const final = yield* watch.pipe(
    Effect.timeoutFail({ duration: "25 seconds", onTimeout: () => "the scenario did not settle within 25 s" })
  )

  const finishedAt = yield* Clock.currentTimeMillis
  const refused = rows.flatMap((row) => (row.kind === "refused" ? [row] : []))
  // The streaming scene, as facts: what the host's watch saw, and what the peer received.
  const seen = writerWatch === undefined ? { progress: [], partialResults: [] } : yield* writerWatch
  const writerRequests = Streaming.requests((yield* writer.requests).map((r) => r.method))
  const streaming = {
    progressSeen: seen.progress,
    partialResultsSeen: seen.partialResults,
    peerMethods: writerRequests.methods
  }
  // The crash scene, as facts: which host started it, which finished it, and what the peer received.
  const slowRequests = yield* slow.requests
  const killed = final.takeover.killedAt
  const finishedByB = final.takeover.survivor !== undefined && Option.exists(final.taken, (d) => d.isFinished)
  const takeover = {
    store: "sqlite",
    // Removed at exit, with its temporary directory.
    file: final.takeover.file ?? null,
    leaseSeconds: LEASE_SECONDS,
    startedBy: { replica: Takeover.REPLICA_A, process: "child", pid: final.takeover.pid ?? null },
    killed: killed === undefined ? null : { signal: "SIGKILL", atSeconds: Number(((killed - started) / 1000).toFixed(1)) },
    finishedBy: finishedByB ? { replica: Takeover.REPLICA_B, process: "demo" } : null,
    // The sends (SendMessage) and the task reads (GetTask) the slow peer received, for this one delegation.
    peerSends: slowRequests.filter((r) => r.method === "SendMessage" || r.method === "message/send").length,
    peerTaskReads: slowRequests.filter((r) => r.method === "GetTask" || r.method === "tasks/get").length,
    ...(final.takeover.error === undefined ? {} : { error: final.takeover.error })
  }
  if (jsonMode) {
    // Delegations and refused requests in one shape: label, host, protocolVersion, workspaceId, task, status,
    // attempts, error or result. protocolVersion is null where no request was sent.
    const encode = Schema.encode(Delegation)
    // The crash scene's row has `takeover` too; it is there even if the scene broke before host A sent anything.
    // The streaming row has `streaming`: the progress notes and partial results its watch saw, the peer's requests.
    const delegations = yield* Effect.forEach(
      rows.flatMap((row) => (row.kind === "refused" ? [] : [row])),
      (row): Effect.Effect<Record<string, unknown>, ParseResult.ParseError> =>
        row.kind === "delegation"
          ? Effect.map(
            encode(final.byId.get(row.id)!),
            (d) => ({
              label: row.label,
              host: row.host,
              protocolVersion: null,
              ...d,
              ...(d.workspaceId === WRITER ? { streaming } : {})
            })
          )
          : Effect.map(
            Effect.transposeMapOption(final.taken, encode),
            (d) => ({
              label: row.label,
              host: row.host,
              protocolVersion: null,
              workspaceId: SLOW,
              ...Option.getOrElse(d, () => ({ status: "failed", attempts: 0 })),
              takeover
            })
          )
    )
    yield* Console.log(JSON.stringify(
      {
        auditLog: auditPath,
        delegations,
        refused: refused.map(({ error, host, label, status, task, workspaceId }) => ({
          label,
          host,
          protocolVersion: null,
          workspaceId,
          task: task.slice(0, 200),
          status,
          attempts: 0,
          error
        }))
      },
      null,
      2
    ))
    return
  }
  const count = (status: string) => final.all.filter((d) => d.status === status).length
  const wasQueued = final.all.filter((d) => d.dispatch === "proxy" && d.queueId !== undefined)
  const platformRows = yield* platform.rows
  const exported = otel
    ? yield* Effect.flatMap(otlpEndpoint, (endpoint) =>
      Effect.map(probeCollector(endpoint), (result) =>
        result._tag === "Right"
          ? `  traces and metrics exported to ${endpoint}`
          : `  could not export traces and metrics to ${endpoint}: ${result.left}`))
    : undefined
  const events = (yield* fs.readFileString(auditPath)).trim().split("\n").length
  // The versions each peer was spoken to, from the delegations themselves.
  const spoken = (workspaceId: string) =>
    `${peerName(workspaceId)} ${
      [...new Set(final.all.flatMap((d) => d.workspaceId === workspaceId && d.protocolVersion ? [d.protocolVersion] : []))]
        .join("+") || "none"
    }`
  const cardsRead = (yield* fast.cardRequests).length + (yield* legacy.cardRequests).length +
    (yield* busy.cardRequests).length + (yield* broken.cardRequests).length + (yield* writer.cardRequests).length
  yield* say([
    "",
    `Done in ${((finishedAt - started) / 1000).toFixed(1)} s: ${final.all.length} delegations, ${refused.length} refused.`,
    `  completed ${count("completed")}  failed ${count("failed")}  cancelled ${count("cancelled")}  queued ${count("queued")}  ` +
    `denied ${refused.filter((r) => r.status === "denied").length}  invalid ${
      refused.filter((r) => r.status === "invalid").length
    }`,
    `  A2A directly, auto (${cardsRead} agent cards read): ${[FAST, LEGACY, BROKEN, WRITER].map(spoken).join(", ")}`,
    Streaming.summary(final.all.find((d) => d.workspaceId === WRITER), seen, writerRequests),
    `  A2A through the platform proxy, pinned: ${spoken(BUSY)}`,
    ...final.all.filter((d) => d.dispatch === "platform").map((d) =>
      `  ${d.task}: sent by the platform${
        seenQueued.has(d.id) ? ", queued behind another task until a heartbeat drained it" : ""
      }; ${d.status}, read from the platform's list (the result is its preview of at most 300 bytes)`
    ),
    ...wasQueued.map((d) =>
      `  ${d.task}: queued through the proxy; the platform delivered it but keeps no reply for it, so it ${d.status}` +
      ` at DELEGATION_QUEUED_TIMEOUT`
    ),
    takeoverLine(final.takeover, final.taken, takeover),
    `  audit trail: ${events} events in ${auditPath}`,
    ...(exported === undefined ? [] : [exported]),
    `  the platform holds ${platformRows.length} delegation rows; peers saw fast ${
      (yield* fast.requests).length
    }, legacy ${(yield* legacy.requests).length}, busy ${(yield* busy.requests).length}, broken ${
      (yield* broken.requests).length
    }, slow ${slowRequests.length}, writer ${writerRequests.methods.length} requests`
  ])
})

/** The summary's line for the crash scene: which host started the delegation, which finished it, what the peer received. */
const takeoverLine = (
  scene: Takeover.Takeover,
  taken: Option.Option<Delegation>,
  facts: { readonly peerSends: number; readonly peerTaskReads: number; readonly killed: { readonly atSeconds: number } | null }
) => {
  const d = Option.getOrUndefined(taken)
  if (scene.error !== undefined || d === undefined || facts.killed === null || scene.survivor === undefined) {
    return `  crash scene: it broke: ${scene.error ?? "it did not get as far as host B"}`
  }
  const outcome = d.status === "completed" ? "completed it" : `it ended ${d.status}: ${d.error ?? ""}`
  const sends = facts.peerSends === 1 ? "exactly one SendMessage" : `${facts.peerSends} SendMessage requests`
  return `  ${d.task}: started by host A (${Takeover.REPLICA_A}, a separate process, pid ${scene.pid}) on a SQLite ` +
    `file; A was killed with SIGKILL at ${facts.killed.atSeconds.toFixed(1)} s while the peer's task was working. ` +
    `Host B (${Takeover.REPLICA_B}, in the demo's process) opened the same file, took the delegation over when A's ` +
    `${LEASE_SECONDS} s lease lapsed, followed the peer's task and ${outcome}; the peer received ${sends} for it ` +
    `and ${facts.peerTaskReads} GetTask reads (the file's temporary directory is removed at exit)`
}

// `npm run -s demo -- --json | head` closes the pipe early; stop quietly, as a Unix filter would.
process.stdout.on("error", (error: NodeJS.ErrnoException) => {
  if (error.code === "EPIPE") process.exit(0)
  throw error
})

program.pipe(
  Effect.scoped,
  Effect.provide(Layer.mergeAll(
    NodeHttpClientPooled.layer(),
    NodeContext.layer,
    otel
      ? Layer.unwrapEffect(
        Effect.map(otlpEndpoint, (endpoint) => OtelNode.layer({ endpoint, serviceName: "effect-a2a-delegation-demo" }))
      )
      : Layer.empty
  )),
  // Warnings go to stderr: stdout carries only the table, or the JSON. Audit events are log lines
  // at Info; keep the table readable.
  Effect.provide(Logger.replace(Logger.defaultLogger, Logger.prettyLogger({ stderr: true }))),
  Logger.withMinimumLogLevel(LogLevel.Warning),
  NodeRuntime.runMain({ disablePrettyLogger: true })
)
