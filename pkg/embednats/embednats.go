package embednats

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// ReadyTimeout bounds how long Start waits for the server to accept
// connections.
const ReadyTimeout = 10 * time.Second

// Options configures Start. The zero value listens on a random free
// port of 127.0.0.1 and logs nothing.
type Options struct {
	Host string       // listen address; default 127.0.0.1
	Port int          // client port; 0 picks a free one
	Log  *slog.Logger // nil: discard; server debug lines only at slog debug
}

// Server is a running embedded nats-server.
type Server struct {
	ns   *server.Server
	once sync.Once
}

// Start starts the server and returns once it accepts client
// connections, or an error after ReadyTimeout.
func Start(o Options) (*Server, error) {
	if o.Host == "" {
		o.Host = "127.0.0.1"
	}
	port := o.Port
	if port == 0 {
		port = server.RANDOM_PORT
	}
	if port < 0 && port != server.RANDOM_PORT || port > 65535 {
		return nil, fmt.Errorf("embedded nats: bad port %d", o.Port)
	}
	opts := &server.Options{
		ServerName:      "consort-embedded",
		Host:            o.Host,
		Port:            port,
		NoSigs:          true,
		NoSystemAccount: true,
		JetStream:       false,
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	l := o.Log
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	lg := &logger{l: l.With("component", "nats-server"), fatal: make(chan string, 1)}
	ns.SetLoggerV2(lg, l.Enabled(context.Background(), slog.LevelDebug), false, false)
	go ns.Start()

	// nats-server reports a failed listen only through its logger's
	// Fatalf; watch for it rather than waiting out ReadyTimeout.
	where := net.JoinHostPort(o.Host, strconv.Itoa(o.Port))
	deadline := time.Now().Add(ReadyTimeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !ns.ReadyForConnections(time.Millisecond) {
		var failure string
		select {
		case failure = <-lg.fatal:
		case <-tick.C:
			if time.Now().After(deadline) {
				failure = fmt.Sprintf("not ready after %s", ReadyTimeout)
			}
		}
		if failure != "" {
			ns.Shutdown()
			ns.WaitForShutdown()
			return nil, fmt.Errorf("embedded nats on %s: %s", where, failure)
		}
	}
	return &Server{ns: ns}, nil
}

// ClientURL is the nats:// URL clients connect to, with the real port.
func (s *Server) ClientURL() string { return s.ns.ClientURL() }

// Port is the client port the server listens on.
func (s *Server) Port() int {
	if a, ok := s.ns.Addr().(*net.TCPAddr); ok {
		return a.Port
	}
	return 0
}

// Shutdown stops the server, closing every client connection, and
// returns when it has stopped. Safe to call more than once.
func (s *Server) Shutdown() {
	s.once.Do(func() {
		s.ns.Shutdown()
		s.ns.WaitForShutdown()
	})
}

// logger adapts nats-server's logging to slog. Fatalf also hands its
// message to Start, which is waiting for the listener.
type logger struct {
	l     *slog.Logger
	fatal chan string
}

func (g *logger) Noticef(format string, v ...any) { g.l.Info(fmt.Sprintf(format, v...)) }
func (g *logger) Warnf(format string, v ...any)   { g.l.Warn(fmt.Sprintf(format, v...)) }
func (g *logger) Errorf(format string, v ...any)  { g.l.Error(fmt.Sprintf(format, v...)) }
func (g *logger) Debugf(format string, v ...any)  { g.l.Debug(fmt.Sprintf(format, v...)) }

func (g *logger) Tracef(format string, v ...any) {
	g.l.Log(context.Background(), slog.LevelDebug-4, fmt.Sprintf(format, v...))
}

func (g *logger) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	g.l.Error(msg)
	select {
	case g.fatal <- msg:
	default:
	}
}
