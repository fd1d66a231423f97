package api

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// Server timeouts: a management client sends small requests quickly, so a
// slow or stalled peer is cut off early.
const (
	ReadHeaderTimeout = 5 * time.Second
	ReadTimeout       = 10 * time.Second
	WriteTimeout      = 30 * time.Second
	IdleTimeout       = 60 * time.Second
	MaxHeaderBytes    = 16 << 10
)

// ListenAddr completes an address from the Corefile: a missing host means
// loopback (127.0.0.1). The port is required.
func ListenAddr(v string) (string, error) {
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		return "", fmt.Errorf("api address %q: want [HOST]:PORT", v)
	}
	if port == "" {
		return "", fmt.Errorf("api address %q: port missing", v)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), nil
}

// IsLoopback reports whether addr's host is a loopback address or
// "localhost".
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Server is a running API server whose handler can be swapped, so that a
// Corefile reload hands the listening socket to the new configuration
// instead of closing and rebinding it.
type Server struct {
	srv *http.Server
	ln  net.Listener
	h   atomic.Pointer[http.Handler]
}

// Listen listens on addr and serves h.
func Listen(addr string, h http.Handler) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &Server{ln: ln}
	s.h.Store(&h)
	var protos http.Protocols
	protos.SetHTTP1(true) // HTTP/1.1 only: no h2c, no HTTP/2
	s.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			(*s.h.Load()).ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		Protocols:         &protos,
	}
	// Serve returns http.ErrServerClosed after Close, or the listener's
	// error; either way the server is done and Close has nothing to add.
	go s.srv.Serve(ln)
	return s, nil
}

// Addr returns the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// SetHandler replaces the handler for the requests that follow.
func (s *Server) SetHandler(h http.Handler) { s.h.Store(&h) }

// Close stops the server, waiting up to five seconds for requests in
// flight.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		return s.srv.Close()
	}
	return nil
}
