// Package testutil starts a whole natter process (pkg/app) in-process for tests, on
// random ports with an embedded NATS server, and gives it helpers: tokens, REST
// calls, WebSocket clients, schema validation of all a test receives. A test that
// needs only a NATS server uses pkg/natstest, which does not link the program.
package testutil
