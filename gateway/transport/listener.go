package transport

import (
	"net"
	"sync"
	"sync/atomic"
)

// ipCapListener caps the connections one remote IP holds open at once
// (gateway.limits.conns-per-ip). A connection over the cap is closed as soon as it
// is accepted, before a byte is read: no TLS handshake, no HTTP parsing, no
// goroutine. The count covers every kind of connection the gateway serves (idle
// keep-alive, slow headers, WebSockets, SSE streams), which the per-user and
// connect-rate limits, reached only after a request is parsed, cannot.
//
// Behind a proxy or load balancer every connection comes from its address: raise
// the cap or set it to 0 there and cap per client at the proxy.
type ipCapListener struct {
	net.Listener
	max     int
	refused *atomic.Int64 // connections closed over the cap

	mu    sync.Mutex // guards conns
	conns map[string]int
}

// NewIPCapListener wraps ln; max <= 0 returns ln itself.
func NewIPCapListener(ln net.Listener, max int, refused *atomic.Int64) net.Listener {
	if max <= 0 {
		return ln
	}
	return &ipCapListener{Listener: ln, max: max, refused: refused, conns: map[string]int{}}
}

// Accept returns the next connection whose IP is under the cap, closing the ones
// over it.
func (l *ipCapListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := remoteIP(c.RemoteAddr())
		l.mu.Lock()
		n := l.conns[ip]
		if n >= l.max {
			l.mu.Unlock()
			l.refused.Add(1)
			_ = c.Close()
			continue
		}
		l.conns[ip] = n + 1
		l.mu.Unlock()
		return &ipCapConn{Conn: c, l: l, ip: ip}, nil
	}
}

func (l *ipCapListener) release(ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conns[ip]--; l.conns[ip] <= 0 {
		delete(l.conns, ip)
	}
}

// ipCapConn gives its slot back when closed (once, however often Close is called:
// net/http and the WebSocket library may both close a hijacked connection).
type ipCapConn struct {
	net.Conn
	l    *ipCapListener
	ip   string
	once sync.Once
}

func (c *ipCapConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.ip) })
	return err
}

// remoteIP is the IP of addr without its port.
func remoteIP(addr net.Addr) string {
	if ta, ok := addr.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	h, _, err := net.SplitHostPort(addr.String())
	if err != nil {
		return addr.String()
	}
	return h
}
