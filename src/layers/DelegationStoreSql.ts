/**
 * A `DelegationStore` in SQL, over `@effect/sql`'s `SqlClient`: SQLite (one host; the store outlives its
 * process) or PostgreSQL (several replicas share it). The driver is the host's: this module imports
 * none; `effect-a2a-delegation/sqlite` and `effect-a2a-delegation/postgres` wire one in.
 *
 * `make` migrates its own tables first (`@effect/sql`'s `Migrator`, recorded in
 * `effect_a2a_delegation_migrations`; every table is prefixed `effect_a2a_delegation_`), so replicas
 * starting together migrate once.
 *
 * Atomicity. `update` is a compare-and-set on the row's revision (read, compute the new state,
 * `UPDATE ... WHERE revision = $read`, again when another writer came first), so concurrent writers of
 * several processes never lose a write, and a writer whose lease another replica claimed (the claim
 * bumps the revision) reads the new owner and fails with `LeaseLost`. `create` is a transaction; on
 * PostgreSQL two replicas inserting one idempotency key race on its UNIQUE index, and the loser reads
 * the winner's row. `claim` is one `UPDATE` over `FOR UPDATE SKIP LOCKED` on PostgreSQL (SQLite
 * serialises writers), with the database's clock: every lease is by the database's clock, never a
 * replica's.
 *
 * Retention is the memory store's (`DelegationStoreMemory`): a finished delegation may be evicted once
 * read (`markRead`) or `retention` after it finished; the oldest of those go whenever more than
 * `history` finished ones are kept; unread ones within `retention` stay beyond `history` up to `cap`,
 * past which the oldest of them go too; the last `cap` evicted ids are remembered. Eviction runs after
 * each write that finishes a delegation, in one transaction, through partial indexes: its cost grows
 * with the finished delegations kept (at most about `cap`), not with the table (see `bench/storeOps.ts`).
 *
 * On PostgreSQL every write that matters to a waiter (`create`, `update`, `claim`, `release`,
 * `requestCancel`) sends `pg_notify('effect_a2a_delegation', id)` with its statement; `written` is that
 * channel when `listen` is given (the postgres entry gives `PgClient.listen`).
 *
 * @since 0.4.0
 */
import { Migrator, SqlClient } from "@effect/sql"
import type { SqlError, Statement } from "@effect/sql"
import { Array as Arr, DateTime, Effect, Layer, Option, Order, Schema, Stream } from "effect"
import type { Scope } from "effect"
import { Delegation } from "../services/Delegations.js"
import type { DelegationStatus } from "../services/Delegations.js"
import type {
  Created,
  DelegationChange,
  Eviction,
  Guard,
  NewDelegation,
  Retention,
  StoredDelegation
} from "../services/DelegationStore.js"
import { applyChange, DelegationStore, DelegationStoreError, retentionLimits } from "../services/DelegationStore.js"

/**
 * @since 0.4.0
 * @category models
 */
export interface Options extends Retention {
  /**
   * The database's notifications on a channel (PostgreSQL `LISTEN`, e.g. `PgClient.listen`): given, the
   * store's `written` streams the ids every process writes. Left out, `written` is undefined.
   */
  readonly listen?: ((channel: string) => Stream.Stream<string, SqlError.SqlError>) | undefined
}

/**
 * The PostgreSQL notification channel every write is announced on (its payload: the delegation id).
 *
 * @since 0.4.0
 * @category constants
 */
export const CHANNEL = "effect_a2a_delegation"

/**
 * The table `@effect/sql`'s `Migrator` records the store's migrations in.
 *
 * @since 0.4.0
 * @category constants
 */
export const MIGRATIONS_TABLE = "effect_a2a_delegation_migrations"

/**
 * The tables of the store.
 *
 * @since 0.4.0
 * @category constants
 */
export const TABLES = {
  delegations: "effect_a2a_delegation_delegations",
  evicted: "effect_a2a_delegation_evicted"
} as const

/** Rows evicted per statement: bounds each statement's parameters (SQLite allows 32,766) and its locks. */
const EVICTION_BATCH = 500
/** Ids per `IN (...)` list. */
const ID_CHUNK = 500
/** Compare-and-set rounds before `update` gives up on a row other writers keep changing. */
const CAS_ATTEMPTS = 50

// --- migrations -------------------------------------------------------------------------------------

/**
 * The schema. Both dialects get the same columns and indexes; only the types and the sequences differ
 * (PostgreSQL sequences; on SQLite, where writers are serialised, `max + 1` through an index).
 * Booleans are small integers (0/1) on both, so one SQL text (and one partial index predicate, which
 * SQLite matches textually) serves both.
 */
const migrations = Migrator.fromRecord({
  "1_create_delegations": Effect.gen(function*() {
    const sql = (yield* SqlClient.SqlClient).withoutTransforms()
    const pg = sql.onDialectOrElse({ pg: () => true, orElse: () => false })
    const big = sql.literal(pg ? "BIGINT" : "INTEGER")
    if (pg) {
      yield* sql`CREATE SEQUENCE effect_a2a_delegation_seq`
      yield* sql`CREATE SEQUENCE effect_a2a_delegation_finished_seq`
    }
    yield* sql`CREATE TABLE effect_a2a_delegation_delegations (
      id TEXT PRIMARY KEY,
      origin TEXT NOT NULL,
      seq ${big} NOT NULL,
      status TEXT NOT NULL,
      idempotency_key TEXT,
      owner TEXT,
      lease_expires_at ${big},
      revision ${big} NOT NULL,
      cancel_requested SMALLINT NOT NULL DEFAULT 0,
      task TEXT,
      created_at ${big} NOT NULL,
      finished_at ${big},
      finished_seq ${big},
      is_read SMALLINT NOT NULL DEFAULT 0,
      delegation TEXT NOT NULL
    )`
    // NULL keys are distinct on both engines: any number of delegations without a key.
    yield* sql`CREATE UNIQUE INDEX effect_a2a_delegation_idempotency
      ON effect_a2a_delegation_delegations (origin, idempotency_key)`
    // list (newest of an origin); on SQLite also max(seq) for the next one.
    yield* sql`CREATE INDEX effect_a2a_delegation_page ON effect_a2a_delegation_delegations (origin, seq)`
    if (!pg) yield* sql`CREATE INDEX effect_a2a_delegation_seq ON effect_a2a_delegation_delegations (seq)`
    // unfinished(origin, owner?)
    yield* sql`CREATE INDEX effect_a2a_delegation_unfinished
      ON effect_a2a_delegation_delegations (origin, owner, seq) WHERE finished_at IS NULL`
    // renew / release of an owner's unfinished delegations
    yield* sql`CREATE INDEX effect_a2a_delegation_owned
      ON effect_a2a_delegation_delegations (owner) WHERE finished_at IS NULL`
    // claim: expired leases of an origin
    yield* sql`CREATE INDEX effect_a2a_delegation_leases
      ON effect_a2a_delegation_delegations (origin, lease_expires_at) WHERE finished_at IS NULL`
    // cancelRequests(owner): a handful of rows at most
    yield* sql`CREATE INDEX effect_a2a_delegation_cancels
      ON effect_a2a_delegation_delegations (owner) WHERE finished_at IS NULL AND cancel_requested = 1`
    // eviction: finished ones in the order they finished, with what tells whether one may go (no row read
    // while walking past the unread ones); on SQLite also max(finished_seq)
    yield* sql`CREATE INDEX effect_a2a_delegation_finished
      ON effect_a2a_delegation_delegations (finished_seq, is_read, finished_at) WHERE finished_at IS NOT NULL`
    // eviction: the unread ones still within retention (counted, and the oldest of them go past cap)
    yield* sql`CREATE INDEX effect_a2a_delegation_unread
      ON effect_a2a_delegation_delegations (finished_at, finished_seq) WHERE finished_at IS NOT NULL AND is_read = 0`
    yield* pg
      ? sql`CREATE TABLE effect_a2a_delegation_evicted (
          seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
          id TEXT NOT NULL UNIQUE,
          evicted_at BIGINT NOT NULL,
          reason TEXT NOT NULL
        )`
      : sql`CREATE TABLE effect_a2a_delegation_evicted (
          seq INTEGER PRIMARY KEY AUTOINCREMENT,
          id TEXT NOT NULL UNIQUE,
          evicted_at INTEGER NOT NULL,
          reason TEXT NOT NULL
        )`
  })
})

/** Replicas starting together on a new PostgreSQL database race to create the migrations table: again, then. */
const migrate = Migrator.make({})({ loader: migrations, table: MIGRATIONS_TABLE }).pipe(
  Effect.retry({ times: 3, while: (error) => error._tag === "SqlError" })
)

// --- rows -------------------------------------------------------------------------------------------

/** `pg` returns BIGINT columns as strings; libSQL, numbers. */
const Int = Schema.Union(Schema.Number, Schema.NumberFromString)

const DelegationJson = Schema.parseJson(Delegation)

const Row = Schema.Struct({
  id: Schema.String,
  origin: Schema.String,
  seq: Int,
  idempotency_key: Schema.NullOr(Schema.String),
  owner: Schema.NullOr(Schema.String),
  lease_expires_at: Schema.NullOr(Int),
  revision: Int,
  cancel_requested: Int,
  task: Schema.NullOr(Schema.String),
  finished_at: Schema.NullOr(Int),
  delegation: DelegationJson
})
type Row = typeof Row.Type

const decodeRow = Schema.decodeUnknown(Row)
const encodeDelegation = Schema.encode(DelegationJson)

const toStored = (row: Row): StoredDelegation => ({
  delegation: row.delegation,
  revision: row.revision,
  origin: row.origin,
  task: row.task ?? undefined,
  idempotencyKey: row.idempotency_key ?? undefined,
  cancelRequested: row.cancel_requested === 1,
  owner: row.owner ?? undefined,
  leaseExpiresAt: row.lease_expires_at ?? undefined
})

const FINAL: ReadonlyArray<DelegationStatus> = ["completed", "failed", "cancelled"]
const isFinal = (status: DelegationStatus) => FINAL.includes(status)

const optionalId = (id: string | undefined) => (id === undefined ? {} : { id })

const unavailable = (operation: string, id?: string) => (cause: SqlError.SqlError) =>
  new DelegationStoreError({ reason: "Unavailable", operation, ...optionalId(id), cause })

const corrupt = (operation: string, id?: string) => (cause: unknown) =>
  new DelegationStoreError({ reason: "Corrupt", operation, ...optionalId(id), cause })

/** A driver error of a UNIQUE index: PostgreSQL's `23505`, SQLite's `SQLITE_CONSTRAINT_UNIQUE`. */
const isUniqueViolation = (error: SqlError.SqlError): boolean => {
  const cause: unknown = error.cause
  if (typeof cause !== "object" || cause === null || !("code" in cause)) return false
  return cause.code === "23505" || cause.code === "SQLITE_CONSTRAINT_UNIQUE"
}

/** Thrown away by `create` to run its transaction once more (it never leaves `create`). */
class KeyRace extends Schema.TaggedError<KeyRace>()("KeyRace", {}) {}

// --- the store --------------------------------------------------------------------------------------

/**
 * Migrates the tables, then returns the store.
 *
 * @since 0.4.0
 * @category constructors
 */
export const make = (
  options: Options
): Effect.Effect<
  DelegationStore["Type"],
  SqlError.SqlError | Migrator.MigrationError,
  SqlClient.SqlClient | Scope.Scope
> =>
  Effect.gen(function*() {
    // The host's client may rename columns (camelCase transforms): the store reads and writes its own names.
    const sql = (yield* SqlClient.SqlClient).withoutTransforms()
    const pg = sql.onDialectOrElse({ pg: () => true, sqlite: () => false, orElse: () => undefined })
    if (pg === undefined) {
      return yield* Effect.dieMessage("DelegationStoreSql supports SQLite and PostgreSQL only")
    }
    yield* migrate.pipe(Effect.provideService(SqlClient.SqlClient, sql))

    const history = Math.max(0, options.history)
    const limits = retentionLimits({ ...options, history })
    const cap = limits.cap
    const retentionMillis = Math.round(limits.retentionMillis)

    const T = sql.literal(TABLES.delegations)
    const E = sql.literal(TABLES.evicted)
    /** The database's clock, epoch milliseconds: leases and finish times of every replica on one clock. */
    const nowMs = sql.literal(
      pg ? "(extract(epoch from now()) * 1000)::bigint" : "CAST(unixepoch('subsec') * 1000 AS INTEGER)"
    )
    const nextSeq = sql.literal(
      pg ? "nextval('effect_a2a_delegation_seq')" : `(SELECT coalesce(max(seq), 0) + 1 FROM ${TABLES.delegations})`
    )
    const nextFinishedSeq = sql.literal(
      pg
        ? "nextval('effect_a2a_delegation_finished_seq')"
        : `(SELECT coalesce(max(finished_seq), 0) + 1 FROM ${TABLES.delegations} WHERE finished_at IS NOT NULL)`
    )

    /**
     * A write returning rows (`... RETURNING *`); on PostgreSQL it also notifies each returned id, in the same
     * statement (a notification goes out when its transaction commits).
     */
    const announced = (write: Statement.Statement<Record<string, unknown>>) =>
      pg ? sql<Record<string, unknown>>`WITH w AS (${write}) SELECT w.*, pg_notify(${CHANNEL}, w.id) FROM w` : write

    const decodeRows = (operation: string, rows: ReadonlyArray<unknown>) =>
      Effect.mapError(Effect.forEach(rows, (row) => decodeRow(row)), corrupt(operation))

    const decodeAll = (operation: string, rows: ReadonlyArray<unknown>) =>
      Effect.map(decodeRows(operation, rows), Arr.map(toStored))

    const decodeOne = (operation: string, id: string, rows: ReadonlyArray<unknown>) =>
      rows.length === 0
        ? Effect.succeedNone
        : decodeRow(rows[0]).pipe(
          Effect.map((row) => Option.some(row)),
          Effect.mapError(corrupt(operation, id))
        )

    const encode = (operation: string, delegation: Delegation) =>
      Effect.mapError(encodeDelegation(delegation), corrupt(operation, delegation.id))

    const selectRow = (id: string) => sql`SELECT * FROM ${T} WHERE id = ${id}`

    // --- eviction ---

    /** Evicts these ids and remembers them (the last `cap` evicted). */
    const evictIds = (ids: ReadonlyArray<string>, now: number, reason: Eviction["reason"]) =>
      Effect.gen(function*() {
        if (ids.length === 0) return
        const gone = yield* sql<{ readonly id: string }>`DELETE FROM ${T} WHERE ${sql.in("id", ids)} RETURNING id`
        if (gone.length === 0) return
        yield* sql`INSERT INTO ${E} ${
          sql.insert(gone.map((row) => ({ id: row.id, evicted_at: now, reason })))
        } ON CONFLICT (id) DO NOTHING`
      })

    /** Forgets all but the last `cap` evicted ids: a range of the primary key. */
    const forget = sql`DELETE FROM ${E} WHERE seq <= (SELECT max(seq) FROM ${E}) - ${cap}`

    /**
     * Evicts while more than `history` finished delegations are kept: those read or past retention, oldest
     * finished first, keeping the newest `history - unread` of them; then the oldest unread beyond `cap`.
     * Every query walks a partial index of finished rows (`finished`, `unread`), never the unfinished ones.
     */
    const evictionPass = Effect.gen(function*() {
      if (pg) {
        // One replica evicts at a time; another's pass, running now, sees this write or the next pass does.
        const [lock] = yield* sql<{ readonly locked: boolean }>`SELECT pg_try_advisory_xact_lock(${
          sql.literal("hashtext('effect_a2a_delegation_eviction')")
        }) AS locked`
        if (lock?.locked !== true) return
      }
      const [clock] = yield* sql<{ readonly now: number | string }>`SELECT ${nowMs} AS now`
      const now = Number(clock?.now ?? 0)
      const cutoff = now - retentionMillis
      const [unreadRow] = yield* sql<{ readonly n: number | string }>`SELECT count(*) AS n FROM ${T}
        WHERE finished_at IS NOT NULL AND is_read = 0 AND finished_at > ${cutoff}`
      const unread = Number(unreadRow?.n ?? 0)
      const keep = Math.max(0, history - unread)
      // The newest delegation that may go: it and every older one that may go are evicted.
      const [boundary] = yield* sql<{ readonly finished_seq: number | string }>`SELECT finished_seq FROM ${T}
        WHERE finished_at IS NOT NULL AND (is_read = 1 OR finished_at <= ${cutoff})
        ORDER BY finished_seq DESC LIMIT 1 OFFSET ${keep}`
      if (boundary !== undefined) {
        const last = Number(boundary.finished_seq)
        let more = true
        while (more) {
          const batch = yield* sql<{ readonly id: string }>`SELECT id FROM ${T}
            WHERE finished_at IS NOT NULL AND (is_read = 1 OR finished_at <= ${cutoff}) AND finished_seq <= ${last}
            ORDER BY finished_seq LIMIT ${EVICTION_BATCH}`
          yield* evictIds(batch.map((row) => row.id), now, "history")
          more = batch.length === EVICTION_BATCH
        }
      }
      if (unread > cap) {
        let excess = unread - cap
        while (excess > 0) {
          const batch = yield* sql<{ readonly id: string }>`SELECT id FROM ${T}
            WHERE finished_at IS NOT NULL AND is_read = 0 AND finished_at > ${cutoff}
            ORDER BY finished_at, finished_seq LIMIT ${Math.min(excess, EVICTION_BATCH)}`
          if (batch.length === 0) break
          yield* evictIds(batch.map((row) => row.id), now, "cap")
          excess -= batch.length
        }
      }
      yield* forget
    })

    /**
     * Eviction after a write that finished a delegation. The write is done whatever happens here: a failed
     * pass is logged and the next one catches up.
     */
    const evict = sql.withTransaction(evictionPass).pipe(
      Effect.catchAllCause((cause) => Effect.logWarning("DelegationStoreSql: eviction failed; the next pass retries", cause)),
      Effect.withSpan("DelegationStoreSql.evict")
    )

    // --- operations ---

    const get = Effect.fn("DelegationStoreSql.get")(function*(id: string) {
      const rows = yield* selectRow(id).pipe(Effect.mapError(unavailable("get", id)))
      return Option.map(yield* decodeOne("get", id, rows), toStored)
    })

    /** `create`'s transaction: the key's current holder answers, or gives the key up, or nobody has it. */
    const createOnce = (input: NewDelegation, json: string, finished: boolean) =>
      sql.withTransaction(Effect.gen(function*() {
        const { delegation, origin } = input
        const key = input.idempotencyKey
        if (key !== undefined) {
          const holders = yield* sql`SELECT * FROM ${T} WHERE origin = ${origin} AND idempotency_key = ${key} ${
            sql.literal(pg ? "FOR UPDATE" : "")
          }`
          const holder = yield* decodeOne("create", delegation.id, holders)
          if (Option.isSome(holder)) {
            const status = holder.value.delegation.status
            if (status !== "failed" && status !== "cancelled") {
              return { _tag: "Existing", stored: toStored(holder.value) } satisfies Created
            }
            yield* sql`UPDATE ${T} SET idempotency_key = NULL, revision = revision + 1 WHERE id = ${holder.value.id}`
          }
        }
        const rows = yield* announced(sql`INSERT INTO ${T} (
            id, origin, seq, status, idempotency_key, owner, lease_expires_at, revision, cancel_requested,
            task, created_at, finished_at, finished_seq, is_read, delegation
          ) VALUES (
            ${delegation.id}, ${origin}, ${nextSeq}, ${delegation.status}, ${key ?? null},
            ${finished ? null : input.owner}, ${finished ? sql.literal("NULL") : sql`${nowMs} + ${input.leaseMillis}`},
            1, 0, ${finished ? null : input.task}, ${delegation.createdAt.epochMillis},
            ${finished ? nowMs : sql.literal("NULL")}, ${finished ? nextFinishedSeq : sql.literal("NULL")}, 0, ${json}
          ) RETURNING *`)
        const created = yield* decodeOne("create", delegation.id, rows)
        if (Option.isNone(created)) {
          return yield* corrupt("create", delegation.id)("the inserted row was not returned")
        }
        return { _tag: "Created", stored: toStored(created.value) } satisfies Created
      })).pipe(
        Effect.catchTag("SqlError", (error) =>
          Effect.fail<KeyRace | SqlError.SqlError>(
            input.idempotencyKey !== undefined && isUniqueViolation(error) ? new KeyRace() : error
          ))
      )

    const create = Effect.fn("DelegationStoreSql.create")(function*(input: NewDelegation) {
      const json = yield* encode("create", input.delegation)
      const finished = input.delegation.isFinished
      // Another replica inserted the same key after this one looked: look again, once; its row answers.
      const created = yield* createOnce(input, json, finished).pipe(
        Effect.catchTag("KeyRace", () => createOnce(input, json, finished)),
        Effect.catchTag("KeyRace", () =>
          new DelegationStoreError({ reason: "Unavailable", operation: "create", id: input.delegation.id })),
        Effect.catchTag("SqlError", unavailable("create", input.delegation.id))
      )
      if (created._tag === "Created" && finished) yield* evict
      return created
    })

    /** One compare-and-set round of `update`: `None` inside `Some` when a guard does not hold, `None` on a lost race. */
    const updateOnce = (id: string, change: DelegationChange, guard: Guard) =>
      Effect.gen(function*() {
        const found = yield* decodeOne("update", id, yield* selectRow(id))
        if (Option.isNone(found)) return Option.some(Option.none<StoredDelegation>())
        const row = found.value
        const before = row.delegation
        if (guard.status !== undefined && !guard.status.includes(before.status)) {
          return Option.some(Option.none<StoredDelegation>())
        }
        if (guard.owner !== undefined && (row.owner ?? undefined) !== guard.owner) {
          return yield* new DelegationStoreError({ reason: "LeaseLost", operation: "update", id })
        }
        const after = applyChange(before, change)
        const json = yield* encode("update", after)
        const wasFinished = row.finished_at !== null
        const finishes = isFinal(after.status) && !wasFinished
        const reopens = !isFinal(after.status) && wasFinished
        // Finishing drops what only a running delegation needs; reopening (rare) makes it claimable at once.
        const lifecycle = finishes
          ? sql`, owner = NULL, lease_expires_at = NULL, task = NULL, finished_at = ${nowMs},
              finished_seq = ${nextFinishedSeq}`
          : reopens
          ? sql`, lease_expires_at = 0, finished_at = NULL, finished_seq = NULL, is_read = 0`
          : sql.literal("")
        const rows = yield* announced(sql`UPDATE ${T} SET status = ${after.status}, delegation = ${json},
            revision = revision + 1 ${lifecycle}
          WHERE id = ${id} AND revision = ${row.revision} RETURNING *`)
        const written = yield* decodeOne("update", id, rows)
        if (Option.isNone(written)) return Option.none()
        if (finishes) yield* evict
        return Option.some(Option.some(toStored(written.value)))
      })

    const update = Effect.fn("DelegationStoreSql.update")(function*(id: string, change: DelegationChange, guard: Guard) {
      for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
        const result = yield* updateOnce(id, change, guard).pipe(Effect.mapError((error) =>
          error._tag === "SqlError" ? unavailable("update", id)(error) : error
        ))
        if (Option.isSome(result)) return result.value
      }
      return yield* new DelegationStoreError({
        reason: "Unavailable",
        operation: "update",
        id,
        cause: `other writers changed the row ${CAS_ATTEMPTS} times in a row`
      })
    })

    const list = Effect.fn("DelegationStoreSql.list")(function*(origin: string, limit: number) {
      if (limit <= 0) return []
      const rows = yield* sql`SELECT * FROM ${T} WHERE origin = ${origin} ORDER BY seq DESC LIMIT ${limit}`.pipe(
        Effect.mapError(unavailable("list"))
      )
      return Arr.reverse(yield* decodeAll("list", rows))
    })

    const unfinished = Effect.fn("DelegationStoreSql.unfinished")(function*(origin: string, owner?: string) {
      const rows = yield* (owner === undefined
        ? sql`SELECT * FROM ${T} WHERE origin = ${origin} AND finished_at IS NULL ORDER BY seq`
        : sql`SELECT * FROM ${T} WHERE origin = ${origin} AND owner = ${owner} AND finished_at IS NULL ORDER BY seq`)
        .pipe(Effect.mapError(unavailable("unfinished")))
      return yield* decodeAll("unfinished", rows)
    })

    /**
     * An unfinished delegation always has a lease (0 once released), so "expired" is one range of the
     * `leases` index, sorted by age afterwards: `seq + 0` keeps the planners from walking the `page` index
     * in `seq` order instead, which reads every live lease older than the expired ones (all of them, once
     * the oldest expired ones are claimed). SKIP LOCKED: a row another replica is claiming right now is
     * left to it.
     */
    const claim = Effect.fn("DelegationStoreSql.claim")(function*(request: {
      readonly origin: string
      readonly owner: string
      readonly leaseMillis: number
      readonly limit: number
    }) {
      if (request.limit <= 0) return []
      const write = sql`UPDATE ${T} SET owner = ${request.owner}, lease_expires_at = ${nowMs} + ${request.leaseMillis},
          revision = revision + 1
        WHERE id IN (
          SELECT id FROM ${T} WHERE origin = ${request.origin} AND finished_at IS NULL AND lease_expires_at < ${nowMs}
          ORDER BY seq + 0 LIMIT ${request.limit} ${sql.literal(pg ? "FOR UPDATE SKIP LOCKED" : "")}
        ) RETURNING *`
      const rows = yield* announced(write).pipe(Effect.mapError(unavailable("claim")))
      const claimed = yield* decodeRows("claim", rows)
      // RETURNING keeps no order: oldest first, as created.
      return Arr.map(Arr.sort(claimed, bySeq), toStored)
    })

    const renew = Effect.fn("DelegationStoreSql.renew")(function*(owner: string, leaseMillis: number) {
      const rows = yield* sql<{ readonly id: string }>`UPDATE ${T} SET lease_expires_at = ${nowMs} + ${leaseMillis}
        WHERE owner = ${owner} AND finished_at IS NULL RETURNING id`.pipe(Effect.mapError(unavailable("renew")))
      return rows.map((row) => row.id)
    })

    /** The owner lets go: owner NULL (`renew` and `unfinished(origin, owner)` no longer see them), lease 0. */
    const release = Effect.fn("DelegationStoreSql.release")(function*(owner: string, ids?: ReadonlyArray<string>) {
      const releaseWhere = (which: Statement.Fragment) =>
        announced(sql`UPDATE ${T} SET owner = NULL, lease_expires_at = 0, revision = revision + 1
          WHERE owner = ${owner} AND finished_at IS NULL ${which} RETURNING id`).pipe(
            Effect.mapError(unavailable("release"))
          )
      if (ids === undefined) return yield* Effect.asVoid(releaseWhere(sql.literal("")))
      yield* Effect.forEach(Arr.chunksOf(ids, ID_CHUNK), (chunk) => releaseWhere(sql`AND ${sql.in("id", chunk)}`), {
        discard: true
      })
    })

    const requestCancel = Effect.fn("DelegationStoreSql.requestCancel")(function*(id: string) {
      const rows = yield* announced(sql`UPDATE ${T} SET cancel_requested = 1, revision = revision + 1
        WHERE id = ${id} AND finished_at IS NULL RETURNING *`).pipe(Effect.mapError(unavailable("requestCancel", id)))
      return Option.map(yield* decodeOne("requestCancel", id, rows), toStored)
    })

    const cancelRequests = Effect.fn("DelegationStoreSql.cancelRequests")(function*(owner: string) {
      const rows = yield* sql<{ readonly id: string }>`SELECT id FROM ${T}
        WHERE owner = ${owner} AND finished_at IS NULL AND cancel_requested = 1 ORDER BY seq`.pipe(
          Effect.mapError(unavailable("cancelRequests"))
        )
      return rows.map((row) => row.id)
    })

    /** Only finished delegations are marked: one read before it finished has not seen its final state. */
    const markRead = Effect.fn("DelegationStoreSql.markRead")(function*(ids: ReadonlyArray<string>) {
      yield* Effect.forEach(
        Arr.chunksOf(ids, ID_CHUNK),
        (chunk) =>
          sql`UPDATE ${T} SET is_read = 1 WHERE ${sql.in("id", chunk)} AND finished_at IS NOT NULL AND is_read = 0`,
        { discard: true }
      ).pipe(Effect.mapError(unavailable("markRead")))
    })

    const evicted = Effect.fn("DelegationStoreSql.evicted")(function*(id: string) {
      const rows = yield* sql<{ readonly evicted_at: number | string; readonly reason: string }>`SELECT evicted_at, reason
        FROM ${E} WHERE id = ${id}`.pipe(Effect.mapError(unavailable("evicted", id)))
      const row = rows[0]
      if (row === undefined) return Option.none<Eviction>()
      const at = DateTime.make(Number(row.evicted_at))
      if (Option.isNone(at) || (row.reason !== "history" && row.reason !== "cap")) {
        return yield* corrupt("evicted", id)(`evicted_at ${row.evicted_at}, reason ${row.reason}`)
      }
      const eviction: Eviction = { at: DateTime.toUtc(at.value), reason: row.reason }
      return Option.some(eviction)
    })

    const listen = options.listen
    return DelegationStore.of({
      shared: true,
      create,
      get,
      update,
      list,
      unfinished,
      claim,
      renew,
      release,
      requestCancel,
      cancelRequests,
      markRead,
      evicted,
      written: listen === undefined ? undefined : listen(CHANNEL).pipe(Stream.mapError(unavailable("written")))
    })
  })

const bySeq = Order.mapInput(Order.number, (row: Row) => row.seq)

/**
 * A store that could not be opened: its database unreachable (`open`) or its tables not migrated
 * (`migrate`), as the `DelegationStoreError` `Unavailable` the rest of the library handles.
 *
 * @since 0.4.0
 * @category errors
 */
export const openError = (cause: SqlError.SqlError | Migrator.MigrationError): DelegationStoreError =>
  new DelegationStoreError({
    reason: "Unavailable",
    operation: cause._tag === "MigrationError" ? "migrate" : "open",
    cause
  })

/**
 * The store as a layer, on the host's `SqlClient`.
 *
 * @since 0.4.0
 * @category layers
 */
export const layer = (
  options: Options
): Layer.Layer<DelegationStore, SqlError.SqlError | Migrator.MigrationError, SqlClient.SqlClient> =>
  Layer.scoped(DelegationStore, make(options))
