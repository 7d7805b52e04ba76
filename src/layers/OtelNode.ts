/**
 * OpenTelemetry for Node hosts: spans and Effect metrics exported over OTLP/HTTP
 * through `@effect/opentelemetry`'s `NodeSdk.layer`, configured by the standard
 * `OTEL_EXPORTER_OTLP_ENDPOINT` (and `OTEL_SERVICE_NAME`).
 *
 * Without an endpoint the layer is empty: spans stay in Effect's own tracer and
 * nothing is exported. Exported from `effect-a2a-delegation/otel`.
 *
 * @since 0.1.0
 */
import { NodeSdk } from "@effect/opentelemetry"
import { OTLPMetricExporter } from "@opentelemetry/exporter-metrics-otlp-http"
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http"
import { PeriodicExportingMetricReader } from "@opentelemetry/sdk-metrics"
import { BatchSpanProcessor } from "@opentelemetry/sdk-trace-base"
import { Config, Duration, Effect, Layer, Option } from "effect"
import type { ConfigError } from "effect"

/**
 * Exporter settings.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** OTLP/HTTP base URL, e.g. `http://localhost:4318` (`/v1/traces`, `/v1/metrics` are appended). */
  readonly endpoint: string
  readonly serviceName: string
  /** How often metrics are pushed. Default 10 seconds. */
  readonly metricInterval?: Duration.DurationInput | undefined
  /** How long shutdown waits for the last export. Default 3 seconds. */
  readonly shutdownTimeout?: Duration.DurationInput | undefined
}

/**
 * Traces and metrics to an OTLP/HTTP collector.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options) => {
  const base = options.endpoint.replace(/\/+$/, "")
  return NodeSdk.layer(() => ({
    resource: { serviceName: options.serviceName },
    shutdownTimeout: options.shutdownTimeout ?? "3 seconds",
    // Short export timeouts, so an unreachable collector delays shutdown by seconds, not tens of seconds.
    spanProcessor: new BatchSpanProcessor(new OTLPTraceExporter({ url: `${base}/v1/traces`, timeoutMillis: 3000 })),
    metricReader: new PeriodicExportingMetricReader({
      exporter: new OTLPMetricExporter({ url: `${base}/v1/metrics`, timeoutMillis: 3000 }),
      exportIntervalMillis: Duration.toMillis(options.metricInterval ?? "10 seconds"),
      exportTimeoutMillis: 3000
    })
  }))
}

/**
 * `OTEL_EXPORTER_OTLP_ENDPOINT` and `OTEL_SERVICE_NAME` (default `serviceName`);
 * an empty layer when no endpoint is configured.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (serviceName: string): Layer.Layer<never, ConfigError.ConfigError> =>
  Layer.unwrapEffect(
    Effect.map(
      Config.all({
        endpoint: Config.option(Config.nonEmptyString("OTEL_EXPORTER_OTLP_ENDPOINT")),
        serviceName: Config.string("OTEL_SERVICE_NAME").pipe(Config.withDefault(serviceName))
      }),
      ({ endpoint, serviceName }) =>
        Option.match(endpoint, {
          onNone: () => Layer.empty,
          onSome: (endpoint) => Layer.discard(layer({ endpoint, serviceName }))
        })
    )
  )
