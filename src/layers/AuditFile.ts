/**
 * Audit events appended to a file, one JSON object per line (`AUDIT_LOG_PATH`),
 * through `@effect/platform`'s `FileSystem`.
 *
 * A write that fails (unwritable path, full disk) is logged as a warning and
 * dropped: auditing never fails or delays a delegation beyond the write itself.
 *
 * @since 0.1.0
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import { Config, DateTime, Effect, Layer, Option } from "effect"
import type { ConfigError } from "effect"
import { Audit, makeRecord } from "../services/Audit.js"

/**
 * Options of the file sink.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  readonly path: string
  readonly workspaceId: string
}

/**
 * Builds the sink; the file's directory is created on the first write if missing.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const directory = path.dirname(options.path)
    let directoryReady = false
    const ensureDirectory = Effect.suspend(() =>
      directoryReady
        ? Effect.void
        : fs.makeDirectory(directory, { recursive: true }).pipe(Effect.tap(() => (directoryReady = true)))
    )
    return Audit.of({
      log: (event) =>
        Effect.flatMap(DateTime.now, (now) =>
          // O_APPEND keeps each line whole when fibers write concurrently.
          ensureDirectory.pipe(
            Effect.zipRight(
              fs.writeFileString(options.path, `${JSON.stringify(makeRecord(options.workspaceId, event, now))}\n`, {
                flag: "a"
              })
            ),
            Effect.catchAll((error) =>
              Effect.logWarning(`audit write to ${options.path} failed; the event is dropped: ${error.message}`)
            )
          ))
    })
  })

/**
 * The file sink layer.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<Audit, never, FileSystem.FileSystem | Path.Path> =>
  Layer.effect(Audit, make(options))

/**
 * `AUDIT_LOG_PATH`, when set.
 *
 * @since 0.1.0
 * @category config
 */
export const pathConfig: Config.Config<Option.Option<string>> = Config.option(
  Config.nonEmptyString("AUDIT_LOG_PATH")
)

/**
 * The file sink at `AUDIT_LOG_PATH`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  workspaceId: string
): Layer.Layer<Audit, ConfigError.ConfigError, FileSystem.FileSystem | Path.Path> =>
  Layer.unwrapEffect(Effect.map(Config.nonEmptyString("AUDIT_LOG_PATH"), (path) => layer({ path, workspaceId })))
