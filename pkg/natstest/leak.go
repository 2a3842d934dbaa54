package natstest

import "go.uber.org/goleak"

// LeakOptions are the goleak options of a package whose tests start in-process NATS
// servers: the server's and the client's goroutines that finish asynchronously
// after Shutdown and Close are not leaks, nor are the caches' cleanup goroutines
// that their library never stops. A role package's TestMain runs
//
//	goleak.VerifyTestMain(m, natstest.LeakOptions()...)
func LeakOptions(extra ...goleak.Option) []goleak.Option {
	return append([]goleak.Option{
		goleak.IgnoreTopFunction("github.com/nats-io/nats-server/v2/server.(*Server).Start.func1"),
		goleak.IgnoreAnyFunction("github.com/nats-io/nats-server/v2/server.(*client).writeLoop"),
		goleak.IgnoreAnyFunction("github.com/nats-io/nats-server/v2/server.(*Server).startGoRoutine.func1"),
		goleak.IgnoreAnyFunction("github.com/nats-io/nats-server/v2/server.(*stream).internalLoop"),
		goleak.IgnoreAnyFunction("github.com/nats-io/nats-server/v2/server.(*fileStore).flushLoop"),
		goleak.IgnoreAnyFunction("github.com/nats-io/nats-server/v2/server.(*fileStore).syncBlocks"),
		goleak.IgnoreAnyFunction("internal/poll.runtime_pollWait"),
		// golang-lru v2's expirable LRU starts a cleanup goroutine it never stops (its
		// done channel is never closed, by the library's design until v3): one per
		// cache for the life of the process.
		goleak.IgnoreTopFunction("github.com/hashicorp/golang-lru/v2/expirable.NewLRU[...].func1"),
	}, extra...)
}
