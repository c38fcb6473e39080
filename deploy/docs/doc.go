// Package docs holds haa's reference documentation: config.md and api.md,
// generated from the comments of proto/haa/v1 by ./gen (make docs), and
// the hand-written operations.md and benchmarks.md. Its tests check that
// the documents' links resolve, that the operations guide names exactly
// the metrics haad exports, and that the benchmark headlines match the
// README's tables; gen's tests check that the generated files are fresh.
package docs
