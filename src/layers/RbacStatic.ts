/**
 * RBAC from a fixed role list (`RBAC_ROLES`) and optional custom permissions
 * (`RBAC_ALLOWED_ACTIONS`).
 *
 * @since 0.1.0
 */
import { Config, ConfigError, Effect, Either, Layer, Schema } from "effect"
import type { Permissions } from "../services/Rbac.js"
import { AccessDenied, isAllowed, Rbac } from "../services/Rbac.js"

/**
 * Options of the static RBAC.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  readonly roles: ReadonlyArray<string>
  readonly allowedActions?: Permissions | undefined
}

/**
 * Builds the service.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options) =>
  Rbac.of({
    roles: options.roles,
    authorize: (action) =>
      isAllowed(action, options.roles, options.allowedActions)
        ? Effect.void
        : Effect.fail(new AccessDenied({ action, roles: options.roles }))
  })

/**
 * The static RBAC layer.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<Rbac> => Layer.succeed(Rbac, make(options))

const decodePermissions = Schema.decodeUnknownEither(
  Schema.parseJson(Schema.Record({ key: Schema.String, value: Schema.Array(Schema.String) }))
)

/**
 * `RBAC_ROLES` (comma list, default `operator`) and `RBAC_ALLOWED_ACTIONS`
 * (JSON object role -> actions). An unreadable value is a `ConfigError`: RBAC fails closed.
 *
 * @since 0.1.0
 * @category config
 */
export const config: Config.Config<Options> = Config.all({
  roles: Config.array(Config.string(), "RBAC_ROLES").pipe(
    Config.map((roles) => roles.map((role) => role.trim()).filter((role) => role !== "")),
    Config.withDefault<ReadonlyArray<string>>(["operator"])
  ),
  allowedActions: Config.option(Config.string("RBAC_ALLOWED_ACTIONS")).pipe(
    Config.mapOrFail((raw) => {
      if (raw._tag === "None") return Either.right(undefined)
      const parsed = decodePermissions(raw.value)
      return Either.isRight(parsed)
        ? Either.right(parsed.right)
        : Either.left(
          ConfigError.InvalidData(["RBAC_ALLOWED_ACTIONS"], "expected a JSON object of role -> array of actions")
        )
    })
  )
})

/**
 * The static RBAC layer, configured from the environment.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig: Layer.Layer<Rbac, ConfigError.ConfigError> = Layer.effect(
  Rbac,
  Effect.map(config, make)
)
