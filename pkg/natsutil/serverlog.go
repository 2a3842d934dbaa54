package natsutil

import (
	"fmt"
	"sync/atomic"

	"go.uber.org/zap"
)

// serverLog is the embedded server's logger (server.Logger): it routes the
// server's lines into Natter's log, so its errors (a store it cannot write, a port
// in use) are seen. Notices go to debug: the server is chatty when it starts.
type serverLog struct {
	log *zap.Logger
	// fatal receives the first fatal message: the server gave up starting.
	fatal chan string
	// onError, when set, is told of every error and warning: the storage watch
	// looks at once instead of at its next poll.
	onError atomic.Pointer[func()]
}

func newServerLog(log *zap.Logger) *serverLog {
	return &serverLog{log: log, fatal: make(chan string, 1)}
}

func (l *serverLog) setOnError(f func()) { l.onError.Store(&f) }

func (l *serverLog) notify() {
	if f := l.onError.Load(); f != nil {
		(*f)()
	}
}

// Noticef implements server.Logger.
func (l *serverLog) Noticef(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }

// Warnf implements server.Logger.
func (l *serverLog) Warnf(format string, v ...any) {
	l.log.Warn(fmt.Sprintf(format, v...))
	l.notify()
}

// Errorf implements server.Logger.
func (l *serverLog) Errorf(format string, v ...any) {
	l.log.Error(fmt.Sprintf(format, v...))
	l.notify()
}

// Fatalf implements server.Logger. The server's own logger would exit the
// process; here the server has stopped starting, and StartEmbedded returns the
// message as its error (so it is not logged as well).
func (l *serverLog) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	select {
	case l.fatal <- msg:
	default:
		l.log.Error(msg)
	}
}

// Debugf implements server.Logger (never called: the server's debug is off).
func (l *serverLog) Debugf(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }

// Tracef implements server.Logger (never called: the server's trace is off).
func (l *serverLog) Tracef(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }
