/**
 * The layers of the `Delegations` service.
 *
 * - `layerConfig(config)` / `layer(options)`: the live stack (HTTP discovery, A2A transport and
 *   platform mirror over the host's `HttpClient`, audit, RBAC, the memory store), from `Config`
 *   or from a plain object; `DelegationsLive` is `layerConfig(config)`, from the environment.
 * - `layerCore(settings)`: the service alone, over `Discovery`, `A2ATransport`, `PlatformMirror`,
 *   `Audit` and `Rbac` you provide, with the memory store; `layerCoreWithoutStore(settings)`
 *   takes a `DelegationStore` too.
 *
 * Each layer owns the background fibers of its delegations, and the reconciler that follows those
 * waiting on the platform: build it once for the whole host.
 * Closing it interrupts every delegation still running, and each one ends `failed`
 * (`interrupted`).
 *
 * @since 0.2.0
 */
import type * as HttpClient from "@effect/platform/HttpClient"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import { Config, ConfigError, Duration, Effect, Either, Layer, LogLevel, Option, Redacted, Schedule, Schema } from "effect"
import { isDotSegment } from "../internal/dotSegment.js"
import * as WaitDefaults from "../internal/waitDefaults.js"
import * as internal from "../programs/service/delegations.js"
import type { Settings } from "../programs/settings.js"
import { ProtocolSetting } from "../services/A2A.js"
import type { A2ATransport, A2ATransportError } from "../services/A2ATransport.js"
import type { Audit } from "../services/Audit.js"
import type { DispatchMode } from "../services/Delegations.js"
import { Delegations, DispatchMode as DispatchModeSchema } from "../services/Delegations.js"
import type { DelegationStore, DelegationStoreError } from "../services/DelegationStore.js"
import type { Discovery } from "../services/Discovery.js"
import { isHttpUrl } from "../services/Discovery.js"
import type { PlatformMirror } from "../services/PlatformMirror.js"
import type { Permissions, Rbac } from "../services/Rbac.js"
import * as A2ATransportHttp from "./A2ATransportHttp.js"
import * as AuditFile from "./AuditFile.js"
import * as AuditLog from "./AuditLog.js"
import * as DelegationStoreMemory from "./DelegationStoreMemory.js"
import * as DiscoveryCache from "./DiscoveryCache.js"
import * as DiscoveryHttp from "./DiscoveryHttp.js"
import * as DiscoveryProxy from "./DiscoveryProxy.js"
import * as PlatformHttpClient from "./PlatformHttpClient.js"
import * as PlatformMirrorHttp from "./PlatformMirrorHttp.js"
import * as RbacStatic from "./RbacStatic.js"
import { DEFAULT_MAX_RESPONSE_BYTES } from "./internal/http.js"

// --- the service alone ------------------------------------------------------------------------------

/**
 * Settings of the service itself (the services it uses are separate layers).
 *
 * @since 0.1.0
 * @category models
 */
export type { Settings } from "../programs/settings.js"

/**
 * `DELEGATION_QUEUED_TIMEOUT` when none is configured: the platform's own stale-queue drop.
 *
 * @since 0.3.0
 * @category constants
 */
export const DEFAULT_QUEUED_TIMEOUT: Duration.Duration = WaitDefaults.QUEUED_TIMEOUT

/**
 * The reconciler's pace when none is configured: 2 seconds doubling up to 30 seconds.
 *
 * @since 0.3.0
 * @category constants
 */
export const DEFAULT_RECONCILE_INTERVAL: { readonly initial: Duration.Duration; readonly max: Duration.Duration } =
  WaitDefaults.RECONCILE_INTERVAL

/**
 * Default `GetTask` / `tasks/get` polling: 0.5 s doubling, at most 10 s apart.
 *
 * @since 0.1.0
 * @category schedules
 */
export const defaultPollSchedule: Schedule.Schedule<unknown, unknown> = Schedule.exponential("500 millis").pipe(
  Schedule.union(Schedule.spaced("10 seconds"))
)

/**
 * The retry policy of the original module: `attempts` POSTs in total, waiting `delay * n`
 * before the n-th retry.
 *
 * @since 0.1.0
 * @category schedules
 */
export const linearRetry = (
  attempts: number,
  delay: Duration.DurationInput
): Schedule.Schedule<unknown, A2ATransportError> =>
  Schedule.linear(delay).pipe(Schedule.intersect(Schedule.recurs(Math.max(0, attempts - 1))))

/**
 * The service alone, over a `DelegationStore` you provide (e.g. a durable one) and the
 * `Discovery`, `A2ATransport`, `PlatformMirror`, `Audit` and `Rbac` services. Settings out of
 * bounds are a defect when the layer is built.
 *
 * @since 0.2.0
 * @category layers
 */
export const layerCoreWithoutStore = (
  settings: Omit<Settings, "history" | "retention" | "historyCap">
): Layer.Layer<Delegations, never, DelegationStore | Discovery | A2ATransport | PlatformMirror | Audit | Rbac> =>
  checkedCore(settings)

/**
 * The service alone with the memory store (`DelegationStoreMemory`, keeping `history` finished
 * delegations): provide `Discovery`, `A2ATransport`, `PlatformMirror`, `Audit` and `Rbac`
 * yourself (live, test, or your own). Settings out of bounds are a defect when the layer is built.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerCore = (
  settings: Settings
): Layer.Layer<Delegations, never, Discovery | A2ATransport | PlatformMirror | Audit | Rbac> =>
  checkedCore(settings).pipe(Layer.provide(DelegationStoreMemory.layer({
    history: settings.history,
    retention: settings.retention,
    cap: settings.historyCap
  })))

const checkedCore = (settings: CheckedSettings) =>
  Layer.scoped(Delegations, Effect.flatMap(Effect.orDie(checkSettings(settings)), internal.make))

// --- the live stack ---------------------------------------------------------------------------------

/**
 * Everything `DelegationsLive` reads from the environment, as a plain object; every field but
 * `workspaceId` has a default. Durations accept Effect duration input (`"5 seconds"`,
 * `Duration.seconds(5)`); a plain number means seconds, as in the environment variables.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** This workspace's id (`WORKSPACE_ID`). */
  readonly workspaceId: string
  /** `PLATFORM_URL`, default `http://host.docker.internal:8080`. */
  readonly platformUrl?: string | undefined
  /** `PLATFORM_TOKEN`: sent as a bearer on every platform call, never to a peer. */
  readonly platformToken?: Redacted.Redacted<string> | string | undefined
  /** `PLATFORM_ORG_ID`: sent as `X-Molecule-Org-Id` on platform calls. */
  readonly orgId?: string | undefined
  /**
   * `PLATFORM_RATE_LIMIT`: requests a minute (or `limit` per `interval`) this host sends the platform
   * at most (discovery, the mirror, the proxy), as a token bucket; past it, a request waits for a
   * place instead of being refused with a 429. Unset: no pacing (a 429 is still sent again after
   * its `Retry-After`).
   */
  readonly platformRateLimit?:
    | number
    | { readonly limit: number; readonly interval: Duration.DurationInput }
    | undefined
  /** `DELEGATION_RETRY_ATTEMPTS`: A2A POSTs in total on transport failures (3). */
  readonly retryAttempts?: number | undefined
  /** `DELEGATION_RETRY_DELAY`: the n-th retry waits `retryDelay * n` (5 seconds). */
  readonly retryDelay?: Duration.DurationInput | undefined
  /** `DELEGATION_TIMEOUT`: per A2A request, per discovery, and for following a task (300 seconds). */
  readonly timeout?: Duration.DurationInput | undefined
  /**
   * `DELEGATION_RETRY_AFTER_MAX`: the longest `Retry-After` (or `retry_after`) honoured before a
   * retry, never more than `timeout` (60 seconds).
   */
  readonly retryAfterMax?: Duration.DurationInput | undefined
  /** `DELEGATION_HISTORY`: finished delegations kept once read or past `retention` (100). */
  readonly history?: number | undefined
  /** `DELEGATION_RETENTION`: how long an unread finished delegation is kept beyond `history` (1 hour). */
  readonly retention?: Duration.DurationInput | undefined
  /** `DELEGATION_HISTORY_CAP`: finished delegations kept at most, read or not (10,000). */
  readonly historyCap?: number | undefined
  /**
   * `DELEGATION_CONCURRENCY`: delegations running at once; the others wait, `pending`, in order.
   * Unbounded by default. Worth setting near the client's connection count when delegating
   * thousands at once to peers that answer quickly (see the README's performance section).
   */
  readonly concurrency?: number | undefined
  /** `DELEGATION_PER_PEER_CONCURRENCY`: delegations running at once to one peer; unbounded by default. */
  readonly perPeerConcurrency?: number | undefined
  /** `DELEGATION_MAX_PENDING`: delegations waiting for a place, past which `delegate` fails with `Overloaded`; unbounded by default. */
  readonly maxPending?: number | undefined
  /** `RBAC_ROLES` (`["operator"]`). */
  readonly roles?: ReadonlyArray<string> | undefined
  /** `RBAC_ALLOWED_ACTIONS`: role -> actions; a listed role is decided only by its list. */
  readonly allowedActions?: Permissions | undefined
  /** Replaces the linear retry schedule (retryAttempts/retryDelay are then ignored). */
  readonly retrySchedule?: Schedule.Schedule<unknown, A2ATransportError> | undefined
  /** Replaces the `GetTask` / `tasks/get` polling schedule. */
  readonly pollSchedule?: Schedule.Schedule<unknown, unknown> | undefined
  /**
   * `DELEGATION_DISPATCH`: `direct` (default) sends A2A straight to the discovered URL; `proxy` through
   * the platform's proxy (`/workspaces/{id}/a2a`), so a busy peer's request is queued (202) instead of
   * timing out; `platform` hands the delegation to the platform (`POST /workspaces/{self}/delegate`) and
   * reads its outcome from the platform's list (a 300-byte preview of the answer).
   */
  readonly dispatch?: DispatchMode | undefined
  /** `A2A_VIA_PLATFORM_PROXY`: the older name of `dispatch: "proxy"` (`dispatch` wins when both are set). */
  readonly viaPlatformProxy?: boolean | undefined
  /**
   * `DELEGATION_QUEUED_TIMEOUT`: how long a delegation may wait on the platform (queued, or in flight in
   * `platform` dispatch) before it ends failed (60 minutes).
   */
  readonly queuedTimeout?: Duration.DurationInput | undefined
  /** `DELEGATION_RECONCILE_INTERVAL`: the reconciler's first wait between rounds (2 seconds). */
  readonly reconcileInterval?: Duration.DurationInput | undefined
  /** `DELEGATION_RECONCILE_MAX_INTERVAL`: the reconciler's longest wait between rounds (30 seconds). */
  readonly reconcileMaxInterval?: Duration.DurationInput | undefined
  /**
   * `A2A_PROTOCOL`: the A2A version spoken to peers. `auto` (default) chooses per peer from its
   * agent card, else tries 1.0 and switches once to 0.3 on a version answer; `1.0` or `0.3` pins it.
   * With proxy dispatch `auto` means 0.3, and `1.0` is a `ConfigError`: the platform's proxy forwards
   * no `A2A-Version` header.
   */
  readonly protocol?: ProtocolSetting | undefined
  /**
   * `AUDIT_LOG_PATH`: append audit events to this file (JSON lines). Needs a `FileSystem` and
   * `Path` in the environment (e.g. `NodeContext.layer`); without one, or without a path, audit
   * events are Effect log lines.
   */
  readonly auditLogPath?: string | undefined
  /**
   * `AUDIT_LOG_LEVEL`: the level of audit log lines when no `AUDIT_LOG_PATH` is set (Debug, so
   * they stay off a console at the default Info level; set Info to see them).
   */
  readonly auditLogLevel?: LogLevel.LogLevel | undefined
  /** Upper bound of each platform call made by the mirror (10 seconds). */
  readonly mirrorTimeout?: Duration.DurationInput | undefined
  /**
   * `DELEGATION_MAX_RESPONSE_BYTES`: the largest response body read from a peer or the platform
   * (10 MiB, the platform proxy's own cap); a larger one fails the request without being buffered.
   */
  readonly maxResponseBytes?: number | undefined
  /**
   * `DELEGATION_SHUTDOWN_TIMEOUT`: how long closing the layer may wait for the platform's update and
   * notify of the delegations it interrupts (5 seconds); their local state is recorded first.
   */
  readonly shutdownTimeout?: Duration.DurationInput | undefined
  /**
   * `DISCOVERY_CACHE_TTL`: how long a peer's discovered endpoint is kept (30 seconds; 0 turns the
   * cache off). It is dropped sooner when a request to the peer fails at the transport or it answers 404.
   */
  readonly discoveryCacheTtl?: Duration.DurationInput | undefined
  /**
   * `DELEGATION_STORE`: where delegations are kept. `memory` (default): this process only. `sqlite:<file>`:
   * a SQLite file (needs `@effect/sql`, `@effect/sql-libsql` and `@libsql/client`); delegations outlive
   * the process. A `postgres://` or `postgresql://` URL: PostgreSQL (needs `@effect/sql` and
   * `@effect/sql-pg`), shared by replicas, which take over each other's delegations.
   */
  readonly store?: string | Redacted.Redacted<string> | undefined
  /** `DELEGATION_REPLICA_ID`: this replica's id in a shared store (a fresh id per built layer). */
  readonly replicaId?: string | undefined
  /** `DELEGATION_LEASE`: how long a replica's lease on a delegation lasts; renewed every third of it (30 seconds). */
  readonly lease?: Duration.DurationInput | undefined
  /**
   * `DELEGATION_RESUME`: a delegation taken over from a replica that had sent it with no answer known
   * is ended `failed` (`fail`, default: the peer may have it) or sent again with the same `messageId` (`resend`).
   */
  readonly resume?: "fail" | "resend" | undefined
  /**
   * `DELEGATION_STREAMING`: `auto` (default) sends the task with `SendStreamingMessage` / `message/stream`
   * to a peer whose agent card offers streaming and follows it as it happens; `off` always sends, then polls.
   */
  readonly streaming?: "auto" | "off" | undefined
}

/**
 * `PLATFORM_URL` when none is configured.
 *
 * @since 0.1.0
 * @category constants
 */
export const DEFAULT_PLATFORM_URL = "http://host.docker.internal:8080"

const optional = <A>(config: Config.Config<A>): Config.Config<A | undefined> =>
  Config.option(config).pipe(Config.map(Option.getOrUndefined))

/**
 * The options from the environment variables of the README's configuration table (through
 * the current `ConfigProvider`). Values are only read here; defaults and bounds are applied
 * by `layerConfig`.
 *
 * @since 0.1.0
 * @category config
 */
export const config: Config.Config<Options> = Config.all({
  workspaceId: Config.string("WORKSPACE_ID"),
  platformUrl: optional(Config.string("PLATFORM_URL")),
  platformToken: optional(Config.redacted("PLATFORM_TOKEN")),
  orgId: optional(Config.string("PLATFORM_ORG_ID")),
  retryAttempts: optional(Config.integer("DELEGATION_RETRY_ATTEMPTS")),
  retryDelay: optional(Config.number("DELEGATION_RETRY_DELAY")),
  timeout: optional(Config.number("DELEGATION_TIMEOUT")),
  retryAfterMax: optional(Config.number("DELEGATION_RETRY_AFTER_MAX")),
  shutdownTimeout: optional(Config.number("DELEGATION_SHUTDOWN_TIMEOUT")),
  discoveryCacheTtl: optional(Config.number("DISCOVERY_CACHE_TTL")),
  history: optional(Config.integer("DELEGATION_HISTORY")),
  retention: optional(Config.number("DELEGATION_RETENTION")),
  historyCap: optional(Config.integer("DELEGATION_HISTORY_CAP")),
  concurrency: optional(Config.integer("DELEGATION_CONCURRENCY")),
  maxResponseBytes: optional(Config.integer("DELEGATION_MAX_RESPONSE_BYTES")),
  platformRateLimit: optional(Config.integer("PLATFORM_RATE_LIMIT")),
  dispatch: optional(Config.literal("direct", "proxy", "platform")("DELEGATION_DISPATCH")),
  perPeerConcurrency: optional(Config.integer("DELEGATION_PER_PEER_CONCURRENCY")),
  maxPending: optional(Config.integer("DELEGATION_MAX_PENDING")),
  viaPlatformProxy: optional(Config.boolean("A2A_VIA_PLATFORM_PROXY")),
  queuedTimeout: optional(Config.number("DELEGATION_QUEUED_TIMEOUT")),
  reconcileInterval: optional(Config.number("DELEGATION_RECONCILE_INTERVAL")),
  reconcileMaxInterval: optional(Config.number("DELEGATION_RECONCILE_MAX_INTERVAL")),
  protocol: optional(Config.literal(...ProtocolSetting.literals)("A2A_PROTOCOL")),
  auditLogPath: AuditFile.pathConfig.pipe(Config.map(Option.getOrUndefined)),
  auditLogLevel: optional(Config.logLevel("AUDIT_LOG_LEVEL")),
  store: optional(Config.redacted("DELEGATION_STORE")),
  replicaId: optional(Config.string("DELEGATION_REPLICA_ID")),
  lease: optional(Config.number("DELEGATION_LEASE")),
  resume: optional(Config.literal("fail", "resend")("DELEGATION_RESUME")),
  streaming: optional(Config.literal("auto", "off")("DELEGATION_STREAMING")),
  rbac: RbacStatic.config
}).pipe(Config.map(({ rbac, ...rest }) => ({ ...rest, roles: rbac.roles, allowedActions: rbac.allowedActions })))

/**
 * The live stack from `Config` (each field a `Config`, or the whole object one). Defaults are
 * applied and values checked here, for every way of configuring: a missing or bad value fails
 * the layer with a `ConfigError` naming it.
 *
 * @since 0.2.0
 * @category layers
 */
export const layerConfig = (
  options: Config.Config.Wrap<Options>
): Layer.Layer<Delegations, ConfigError.ConfigError | DelegationStoreError, HttpClient.HttpClient> =>
  Layer.unwrapEffect(Effect.map(Effect.flatMap(Config.unwrap(options), resolveOptions), layerResolved))

/**
 * The live stack from a plain options object, for hosts that do not configure through the
 * environment (optionally with their own retry `Schedule`).
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: Options
): Layer.Layer<Delegations, ConfigError.ConfigError | DelegationStoreError, HttpClient.HttpClient> =>
  layerConfig(Config.succeed(options))

// --- defaults and bounds ------------------------------------------------------------------------

/** Options with every default applied and every value checked. */
interface ResolvedOptions extends Settings {
  readonly platformUrl: string
  /** No platform URL was configured, so `DEFAULT_PLATFORM_URL` is used (errors then say to set `PLATFORM_URL`). */
  readonly platformUrlIsDefault: boolean
  readonly platformToken: Option.Option<Redacted.Redacted<string>>
  readonly orgId: Option.Option<string>
  /** Bound of each call of the live platform mirror. */
  readonly platformTimeout: Duration.Duration
  readonly maxResponseBytes: number
  /** Platform requests at most per interval; `undefined` for no pacing. */
  readonly platformRateLimit: { readonly limit: number; readonly interval: Duration.Duration } | undefined
  /** How long the live discovery keeps a peer's endpoint; zero for no cache. */
  readonly discoveryCacheTtl: Duration.Duration
  readonly dispatch: DispatchMode
  readonly protocol: ProtocolSetting
  readonly auditLogPath: string | undefined
  readonly auditLogLevel: LogLevel.LogLevel
  readonly roles: ReadonlyArray<string>
  readonly allowedActions: Permissions | undefined
  readonly store: StoreChoice
}

/** Where `DELEGATION_STORE` says delegations are kept. */
type StoreChoice =
  | { readonly _tag: "memory" }
  | { readonly _tag: "sqlite"; readonly filename: string }
  | { readonly _tag: "postgres"; readonly url: Redacted.Redacted<string> }

const storeChoice = (input: string | Redacted.Redacted<string> | undefined): Either.Either<StoreChoice, ConfigError.ConfigError> => {
  if (input === undefined) return Either.right({ _tag: "memory" })
  const text = (typeof input === "string" ? input : Redacted.value(input)).trim()
  if (text === "" || text === "memory") return Either.right({ _tag: "memory" })
  if (text.startsWith("sqlite:")) {
    const filename = text.slice("sqlite:".length)
    return filename === "" ? invalid("DELEGATION_STORE", "sqlite: needs a file, e.g. sqlite:./delegations.db") : Either.right({ _tag: "sqlite", filename })
  }
  if (/^postgres(ql)?:\/\//.test(text)) return Either.right({ _tag: "postgres", url: Redacted.make(text) })
  // The value may hold a password: it is not repeated.
  return invalid("DELEGATION_STORE", "must be memory, sqlite:<file>, or a postgres:// or postgresql:// URL")
}

const invalid = (key: string, message: string) => Either.left(ConfigError.InvalidData([key], message))

/** A duration option: a plain number means seconds, as in the environment variable; anything else is Effect duration input. */
const durationOption = (
  key: string,
  input: Duration.DurationInput | undefined,
  defaultSeconds: number
): Either.Either<Duration.Duration, ConfigError.ConfigError> => {
  if (input === undefined) return Either.right(Duration.seconds(defaultSeconds))
  if (typeof input === "number") {
    return Number.isFinite(input) && input >= 0
      ? Either.right(Duration.seconds(input))
      : invalid(key, `must be a number of seconds >= 0, got ${input}`)
  }
  return Either.fromOption(
    Duration.decodeUnknown(input),
    () => ConfigError.InvalidData([key], `must be a duration ("30 seconds", Duration.seconds(30)) or a number of seconds`)
  )
}

/** The service's settings, with the memory store's when it is used. */
type CheckedSettings = Omit<Settings, "history" | "retention" | "historyCap"> & Partial<Pick<Settings, "history" | "retention" | "historyCap">>

const isIntegerAtLeast = (value: number | undefined, min: number) =>
  value === undefined || (Number.isInteger(value) && value >= min)

/** The bounds of the service's settings, however they are given. */
const checkSettings = <S extends CheckedSettings>(settings: S): Either.Either<S, ConfigError.ConfigError> => {
  const {
    concurrency,
    history,
    historyCap,
    maxPending,
    mirrorTimeout,
    perPeerConcurrency,
    retention,
    retryAfterMax,
    shutdownTimeout,
    timeout
  } = settings
  if (!isIntegerAtLeast(history, 0)) return invalid("DELEGATION_HISTORY", `must be an integer >= 0, got ${history}`)
  if (!isIntegerAtLeast(historyCap, 1)) return invalid("DELEGATION_HISTORY_CAP", `must be an integer >= 1, got ${historyCap}`)
  if (retention !== undefined && Duration.lessThan(retention, Duration.zero)) return invalid("DELEGATION_RETENTION", "must be >= 0")
  if (!isIntegerAtLeast(concurrency, 1)) {
    return invalid("DELEGATION_CONCURRENCY", `must be an integer >= 1, got ${concurrency}`)
  }
  if (!isIntegerAtLeast(perPeerConcurrency, 1)) {
    return invalid("DELEGATION_PER_PEER_CONCURRENCY", `must be an integer >= 1, got ${perPeerConcurrency}`)
  }
  if (!isIntegerAtLeast(maxPending, 0)) return invalid("DELEGATION_MAX_PENDING", `must be an integer >= 0, got ${maxPending}`)
  if (!Duration.greaterThan(timeout, Duration.zero)) return invalid("DELEGATION_TIMEOUT", "must be > 0")
  if (shutdownTimeout !== undefined && !Duration.greaterThan(shutdownTimeout, Duration.zero)) {
    return invalid("DELEGATION_SHUTDOWN_TIMEOUT", "must be > 0")
  }
  if (retryAfterMax !== undefined && !Duration.greaterThan(retryAfterMax, Duration.zero)) {
    return invalid("DELEGATION_RETRY_AFTER_MAX", "must be > 0")
  }
  if (mirrorTimeout !== undefined && !Duration.greaterThan(mirrorTimeout, Duration.zero)) {
    return invalid("mirrorTimeout", "must be > 0")
  }
  if (settings.queuedTimeout !== undefined && !Duration.greaterThan(settings.queuedTimeout, Duration.zero)) {
    return invalid("DELEGATION_QUEUED_TIMEOUT", "must be > 0")
  }
  const pace = settings.reconcileInterval
  if (pace !== undefined) {
    if (!Duration.greaterThan(pace.initial, Duration.zero)) return invalid("DELEGATION_RECONCILE_INTERVAL", "must be > 0")
    if (Duration.lessThan(pace.max, pace.initial)) {
      return invalid("DELEGATION_RECONCILE_MAX_INTERVAL", "must be >= DELEGATION_RECONCILE_INTERVAL")
    }
  }
  return Either.right(settings)
}

const resolveOptions = (options: Options): Either.Either<ResolvedOptions, ConfigError.ConfigError> =>
  Either.gen(function*() {
    const timeout = yield* durationOption("DELEGATION_TIMEOUT", options.timeout, 300)
    const retryDelay = yield* durationOption("DELEGATION_RETRY_DELAY", options.retryDelay, 5)
    const platformTimeout = yield* durationOption("mirrorTimeout", options.mirrorTimeout, 10)
    const retryAfterMax = yield* durationOption("DELEGATION_RETRY_AFTER_MAX", options.retryAfterMax, 60)
    const shutdownTimeout = yield* durationOption("DELEGATION_SHUTDOWN_TIMEOUT", options.shutdownTimeout, 5)
    const queuedTimeout = yield* durationOption("DELEGATION_QUEUED_TIMEOUT", options.queuedTimeout, 3600)
    const reconcileInitial = yield* durationOption("DELEGATION_RECONCILE_INTERVAL", options.reconcileInterval, 2)
    const reconcileMax = yield* durationOption(
      "DELEGATION_RECONCILE_MAX_INTERVAL",
      options.reconcileMaxInterval,
      Math.max(30, Duration.toSeconds(reconcileInitial))
    )
    const retention = yield* durationOption("DELEGATION_RETENTION", options.retention, 3600)
    const discoveryCacheTtl = yield* durationOption(
      "DISCOVERY_CACHE_TTL",
      options.discoveryCacheTtl,
      Duration.toSeconds(DiscoveryCache.DEFAULT_TIME_TO_LIVE)
    )
    const lease = yield* durationOption("DELEGATION_LEASE", options.lease, 30)
    if (!Duration.greaterThan(lease, Duration.zero)) return yield* invalid("DELEGATION_LEASE", "must be > 0")
    const store = yield* storeChoice(options.store)
    if (options.replicaId !== undefined && options.replicaId.trim() === "") {
      return yield* invalid("DELEGATION_REPLICA_ID", "must be a non-empty id")
    }
    if (options.streaming !== undefined && options.streaming !== "auto" && options.streaming !== "off") {
      return yield* invalid("DELEGATION_STREAMING", `must be auto or off, got ${String(options.streaming)}`)
    }
    if (options.resume !== undefined && options.resume !== "fail" && options.resume !== "resend") {
      return yield* invalid("DELEGATION_RESUME", `must be fail or resend, got ${String(options.resume)}`)
    }
    const retryAttempts = options.retryAttempts ?? 3
    const platformUrl = (options.platformUrl ?? DEFAULT_PLATFORM_URL).replace(/\/+$/, "")
    const protocol = options.protocol ?? "auto"
    if (typeof options.workspaceId !== "string" || options.workspaceId.trim() === "") {
      return yield* invalid("WORKSPACE_ID", "must be a non-empty workspace id")
    }
    if (isDotSegment(options.workspaceId)) return yield* invalid("WORKSPACE_ID", "`.` and `..` are not workspace ids")
    if (!isHttpUrl(platformUrl)) return yield* invalid("PLATFORM_URL", `must be an absolute http(s) URL, got ${platformUrl}`)
    if (!Number.isInteger(retryAttempts) || retryAttempts < 1) {
      return yield* invalid("DELEGATION_RETRY_ATTEMPTS", "must be an integer >= 1")
    }
    if (!Schema.is(ProtocolSetting)(protocol)) return yield* invalid("A2A_PROTOCOL", `must be auto, 1.0 or 0.3, got ${protocol}`)
    if (options.dispatch !== undefined && !Schema.is(DispatchModeSchema)(options.dispatch)) {
      return yield* invalid("DELEGATION_DISPATCH", `must be direct, proxy or platform, got ${String(options.dispatch)}`)
    }
    if (!Duration.greaterThan(platformTimeout, Duration.zero)) return yield* invalid("mirrorTimeout", "must be > 0")
    const maxResponseBytes = options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES
    if (!Number.isInteger(maxResponseBytes) || maxResponseBytes < 1) {
      return yield* invalid("DELEGATION_MAX_RESPONSE_BYTES", `must be an integer >= 1, got ${maxResponseBytes}`)
    }
    const rate = options.platformRateLimit
    const platformRateLimit = rate === undefined
      ? undefined
      : typeof rate === "number"
      ? { limit: rate, interval: Duration.minutes(1) }
      : { limit: rate.limit, interval: Duration.decode(rate.interval) }
    if (
      platformRateLimit !== undefined &&
      (!Number.isInteger(platformRateLimit.limit) || platformRateLimit.limit < 1 ||
        !Duration.greaterThan(platformRateLimit.interval, Duration.zero))
    ) {
      return yield* invalid(
        "PLATFORM_RATE_LIMIT",
        `must be an integer >= 1 per a positive interval, got ${platformRateLimit.limit} per ${
          Duration.format(platformRateLimit.interval)
        }`
      )
    }
    const token = Option.fromNullable(options.platformToken).pipe(
      Option.map((t) => (typeof t === "string" ? Redacted.make(t) : t)),
      Option.filter((t) => Redacted.value(t) !== "")
    )
    const dispatch = options.dispatch ?? (options.viaPlatformProxy === true ? "proxy" : "direct")
    if (dispatch === "proxy" && protocol === "1.0") {
      return yield* invalid(
        "A2A_PROTOCOL",
        "1.0 cannot be used with proxy dispatch (DELEGATION_DISPATCH=proxy or A2A_VIA_PLATFORM_PROXY=true): the " +
          "platform's proxy forwards no A2A-Version header, so a 1.0 request would reach the peer as 0.3, and a " +
          "queued one is delivered later as it was sent; use auto or 0.3 (auto means 0.3 through the proxy), or " +
          "dispatch directly"
      )
    }
    return yield* checkSettings<ResolvedOptions>({
      workspaceId: options.workspaceId,
      history: options.history ?? 100,
      retention,
      historyCap: options.historyCap,
      concurrency: options.concurrency,
      perPeerConcurrency: options.perPeerConcurrency,
      maxPending: options.maxPending,
      timeout,
      retryAfterMax,
      shutdownTimeout,
      // The live mirror bounds each call itself (`platformTimeout`), so the program adds no second timer.
      mirrorTimeout: undefined,
      retrySchedule: options.retrySchedule ?? linearRetry(retryAttempts, retryDelay),
      pollSchedule: options.pollSchedule ?? defaultPollSchedule,
      platformUrl,
      platformUrlIsDefault: options.platformUrl === undefined,
      platformToken: token,
      orgId: Option.filter(Option.fromNullable(options.orgId), (org) => org !== ""),
      platformTimeout,
      maxResponseBytes,
      platformRateLimit,
      discoveryCacheTtl,
      dispatch,
      queuedTimeout,
      reconcileInterval: { initial: reconcileInitial, max: reconcileMax },
      // The proxy carries only 0.3 (see above): `auto` has nothing to choose between.
      protocol: dispatch === "proxy" && protocol === "auto" ? "0.3" : protocol,
      auditLogPath: options.auditLogPath === "" ? undefined : options.auditLogPath,
      auditLogLevel: options.auditLogLevel ?? LogLevel.Debug,
      roles: options.roles ?? ["operator"],
      allowedActions: options.allowedActions,
      store,
      replicaId: options.replicaId,
      lease,
      resume: options.resume,
      streaming: options.streaming
    })
  })

// --- wiring -------------------------------------------------------------------------------------------

/**
 * HTTP discovery, A2A and mirror over the host's `HttpClient`, audit to a file or the log, static
 * RBAC. Every platform request of the layer goes through one `PlatformHttpClient`, which paces them
 * all by the platform's rate limit (and `PLATFORM_RATE_LIMIT`).
 */
const layerResolved = (
  options: ResolvedOptions
): Layer.Layer<Delegations, ConfigError.ConfigError | DelegationStoreError, HttpClient.HttpClient> =>
  checkedCore(options).pipe(
    Layer.provide(storeLayer(options)),
    Layer.provide(Layer.mergeAll(
      discoveryLayer(options),
      A2ATransportHttp.layer({
        workspaceId: options.workspaceId,
        timeout: options.timeout,
        protocol: options.protocol,
        maxResponseBytes: options.maxResponseBytes
      }),
      PlatformMirrorHttp.layer({ timeout: options.platformTimeout, maxResponseBytes: options.maxResponseBytes }),
      auditLayer(options),
      RbacStatic.layer({ roles: options.roles, allowedActions: options.allowedActions })
    )),
    Layer.provide(PlatformHttpClient.layer({ ...options, rateLimit: options.platformRateLimit }))
  )

/**
 * The store `DELEGATION_STORE` names. The SQL ones are loaded only when chosen, so that the core needs
 * none of their packages; a missing package is a `ConfigError` that names the install line.
 */
const storeLayer = (options: ResolvedOptions): Layer.Layer<DelegationStore, ConfigError.ConfigError | DelegationStoreError> => {
  const retention = { history: options.history, retention: options.retention, cap: options.historyCap }
  const choice = options.store
  switch (choice._tag) {
    case "memory":
      return DelegationStoreMemory.layer(retention)
    case "sqlite":
      return Layer.unwrapEffect(Effect.map(
        loadDriver(() => import("./DelegationStoreSqlite.js"), "@effect/sql @effect/sql-libsql @libsql/client"),
        (module) => module.layer({ filename: choice.filename, ...retention })
      ))
    case "postgres":
      return Layer.unwrapEffect(Effect.map(
        loadDriver(() => import("./DelegationStorePg.js"), "@effect/sql @effect/sql-pg"),
        (module) => module.layer({ url: choice.url, ...retention })
      ))
  }
}

const loadDriver = <A>(load: () => Promise<A>, packages: string): Effect.Effect<A, ConfigError.ConfigError> =>
  Effect.tryPromise({
    try: load,
    catch: (cause) =>
      ConfigError.InvalidData(
        ["DELEGATION_STORE"],
        `this store needs ${packages} (npm install ${packages}): ${cause instanceof Error ? cause.message : String(cause)}`
      )
  })

/** The proxy's discovery makes no request; the registry's answers are kept for `discoveryCacheTtl`. */
const discoveryLayer = (options: ResolvedOptions): Layer.Layer<Discovery, never, PlatformHttpClient.PlatformHttpClient> => {
  if (options.dispatch === "proxy") return DiscoveryProxy.layer(options)
  const http = DiscoveryHttp.layer({ timeout: options.timeout, maxResponseBytes: options.maxResponseBytes })
  if (!Duration.greaterThan(options.discoveryCacheTtl, Duration.zero)) return http
  return DiscoveryCache.layer({ timeToLive: options.discoveryCacheTtl }).pipe(Layer.provide(http))
}

/** The file sink when a path is configured and the environment has a `FileSystem`; the log otherwise. */
const auditLayer = (options: ResolvedOptions): Layer.Layer<Audit> => {
  const { auditLogLevel: level, auditLogPath, workspaceId } = options
  if (auditLogPath === undefined) return AuditLog.layer({ workspaceId, level })
  return Layer.unwrapEffect(Effect.gen(function*() {
    const fs = yield* Effect.serviceOption(FileSystem.FileSystem)
    const path = yield* Effect.serviceOption(Path.Path)
    if (Option.isSome(fs) && Option.isSome(path)) {
      return AuditFile.layer({ path: auditLogPath, workspaceId }).pipe(
        Layer.provide(Layer.merge(Layer.succeed(FileSystem.FileSystem, fs.value), Layer.succeed(Path.Path, path.value)))
      )
    }
    yield* Effect.logWarning(
      "AUDIT_LOG_PATH is set but no FileSystem/Path is provided (add NodeContext.layer); audit events go to the log"
    )
    return AuditLog.layer({ workspaceId, level })
  }))
}
