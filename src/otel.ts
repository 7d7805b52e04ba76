/**
 * OpenTelemetry wiring for Node hosts (needs `@effect/opentelemetry` and the
 * OTLP/HTTP exporters; see the README's Install section).
 *
 * @since 0.1.0
 */

/** OpenTelemetry traces and metrics over OTLP/HTTP, from `OTEL_EXPORTER_OTLP_ENDPOINT`. */
export * as OtelNode from "./layers/OtelNode.js"
