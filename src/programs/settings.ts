/**
 * The settings of the `Delegations` service, read by the steps of the delegation program
 * (`./engine.ts`), by the service that runs them (`./service/delegations.ts`), and by the layers
 * that build it (`../layers/DelegationsLayer.ts`, which checks them and exports this type as
 * `DelegationsLayer.Settings`). It sits below all three so that none of them imports back up.
 *
 * Not an entry point: the type is public through `DelegationsLayer` only.
 */
import type { Duration, Schedule } from "effect"
import type { A2ATransportError } from "../services/A2ATransport.js"
import type { DispatchMode } from "../services/Delegations.js"

/**
 * Settings of the service itself (the services it uses are separate layers).
 *
 * @since 0.1.0
 * @category models
 */
export interface Settings {
  /** This workspace's own id (the source of every delegation). */
  readonly workspaceId: string
  /**
   * Finished delegations the memory store keeps once they have been read or `retention` has passed
   * (`DELEGATION_HISTORY`), an integer >= 0.
   */
  readonly history: number
  /** How long the memory store keeps an unread finished delegation beyond `history` (`DELEGATION_RETENTION`, 1 hour). */
  readonly retention?: Duration.Duration | undefined
  /** Finished delegations the memory store keeps at most, read or not (`DELEGATION_HISTORY_CAP`, 10,000). */
  readonly historyCap?: number | undefined
  /** When to re-send after a transport failure; its input is the failure. `Retry-After` stays a lower bound. */
  readonly retrySchedule: Schedule.Schedule<unknown, A2ATransportError>
  /**
   * The longest `Retry-After` honoured (`DELEGATION_RETRY_AFTER_MAX`, 60 seconds), > 0; never more
   * than `timeout` either. A longer one waits this long.
   */
  readonly retryAfterMax?: Duration.Duration | undefined
  /** When to poll `GetTask` / `tasks/get` while the peer's task is submitted or working. */
  readonly pollSchedule: Schedule.Schedule<unknown, unknown>
  /** How long a peer task may stay submitted or working (`DELEGATION_TIMEOUT`); > 0. */
  readonly timeout: Duration.Duration
  /**
   * Upper bound of each best-effort platform call, > 0. Leave it out when the `PlatformMirror`
   * bounds its own calls (the live one does).
   */
  readonly mirrorTimeout?: Duration.Duration | undefined
  /**
   * Delegations running at once (`DELEGATION_CONCURRENCY`), an integer >= 1; the others stay
   * `pending`, in order, until a place is free. Unbounded when left out.
   */
  readonly concurrency?: number | undefined
  /**
   * How long closing the layer may wait for the platform (`DELEGATION_SHUTDOWN_TIMEOUT`, 5 seconds),
   * > 0. Closing records every interrupted delegation as failed locally first; platform calls still
   * running past this bound are abandoned, with one warning.
   */
  readonly shutdownTimeout?: Duration.Duration | undefined
  /**
   * How delegations are carried (`DELEGATION_DISPATCH`): `direct` (default) and `proxy` send A2A
   * through the `Discovery` and `A2ATransport` you provide; `platform` hands each delegation to the
   * platform (`PlatformMirror.delegate`) and follows it in the platform's list.
   */
  readonly dispatch?: DispatchMode | undefined
  /**
   * How long a delegation may wait on the platform (`queued`, or in flight in `platform` dispatch)
   * before it ends `failed` (`DELEGATION_QUEUED_TIMEOUT`); > 0. Default 60 minutes, the platform's own
   * stale-queue drop.
   */
  readonly queuedTimeout?: Duration.Duration | undefined
  /**
   * The reconciler's pace (`DELEGATION_RECONCILE_INTERVAL`, `DELEGATION_RECONCILE_MAX_INTERVAL`): the first
   * wait between its rounds (2 seconds), doubling up to `max` (30 seconds, the platform's heartbeat).
   */
  readonly reconcileInterval?: { readonly initial: Duration.Duration; readonly max: Duration.Duration } | undefined
  /**
   * Delegations running at once to one peer (`DELEGATION_PER_PEER_CONCURRENCY`), an integer >= 1;
   * the others wait, `pending`, without delaying other peers' delegations. Unbounded when left out.
   */
  readonly perPeerConcurrency?: number | undefined
  /**
   * Delegations waiting for a place at most (`DELEGATION_MAX_PENDING`), an integer >= 0; past it
   * `delegate` fails at once with `Overloaded`. Unbounded when left out.
   */
  readonly maxPending?: number | undefined
  /**
   * This replica's id (`DELEGATION_REPLICA_ID`): the owner of the delegations it runs in the store.
   * Two live layers must never share one; a fresh id for each built layer is the default.
   */
  readonly replicaId?: string | undefined
  /**
   * How long a replica's lease on a delegation lasts (`DELEGATION_LEASE`, 30 seconds), > 0: it is
   * renewed every third of it, and another replica sharing the store takes the delegation over once
   * it has expired.
   */
  readonly lease?: Duration.Duration | undefined
  /**
   * What a replica does with a delegation it took over whose request may already have reached the
   * peer with no answer known (`DELEGATION_RESUME`): `fail` (default) ends it `failed`
   * (`DelegationUnresolved`, `maybe-delivered`); `resend` sends it again with the same `messageId`.
   */
  readonly resume?: "fail" | "resend" | undefined
  /**
   * Whether a peer whose agent card offers streaming is sent the task with `SendStreamingMessage` /
   * `message/stream` and followed as it happens (`DELEGATION_STREAMING`): `auto` (default) or `off`
   * (always send, then poll).
   */
  readonly streaming?: "auto" | "off" | undefined
}
