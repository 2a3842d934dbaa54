// Package e2e holds end-to-end tests: a whole natter process started in-process on
// random ports with an embedded NATS server, driven through real WebSocket and HTTP
// clients.
package e2e
