package api

import (
	"context"
	"crypto/tls"
	"errors"
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

// ListenOptions says how the server is reached.
type ListenOptions struct {
	// CertFile and KeyFile are a PEM certificate (chain) and its key: the
	// server speaks HTTPS (TLS 1.2 or later) with them. Both or neither.
	CertFile, KeyFile string
	// Insecure allows plain HTTP on an address that is not loopback.
	// Without it, such an address needs CertFile and KeyFile: bearer
	// tokens must not cross a network in clear text.
	Insecure bool
}

// ErrInsecure is returned by ListenWith for a plain-HTTP address that is
// not loopback without ListenOptions.Insecure.
var ErrInsecure = errors.New("not loopback and no TLS")

// Server is a running API server whose handler can be swapped, so that a
// Corefile reload hands the listening socket to the new configuration
// instead of closing and rebinding it.
type Server struct {
	srv  *http.Server
	ln   net.Listener
	h    atomic.Pointer[http.Handler]
	cert atomic.Pointer[tls.Certificate] // nil without TLS
}

// Listen listens on addr and serves h over plain HTTP. An address that is
// not loopback is refused (ErrInsecure): use ListenWith for TLS or to
// allow it.
func Listen(addr string, h http.Handler) (*Server, error) {
	return ListenWith(addr, h, ListenOptions{})
}

// ListenWith listens on addr and serves h, over TLS if o has a
// certificate. The certificate and key are read before listening, so a
// bad pair is an error here.
func ListenWith(addr string, h http.Handler, o ListenOptions) (*Server, error) {
	if (o.CertFile == "") != (o.KeyFile == "") {
		return nil, errors.New("api TLS needs both a certificate and a key")
	}
	useTLS := o.CertFile != ""
	if !useTLS && !o.Insecure && !IsLoopback(addr) {
		return nil, fmt.Errorf("api %s: %w: give a certificate and key (api_tls CERT KEY), or allow plain HTTP explicitly (api_insecure)", addr, ErrInsecure)
	}
	s := &Server{}
	if useTLS {
		if err := s.loadCert(o.CertFile, o.KeyFile); err != nil {
			return nil, err
		}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s.ln = ln
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
	if useTLS {
		s.srv.TLSConfig = &tls.Config{
			MinVersion: tls.VersionTLS12,
			NextProtos: []string{"http/1.1"},
			GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
				return s.cert.Load(), nil
			},
		}
		go s.srv.ServeTLS(ln, "", "")
	} else {
		go s.srv.Serve(ln)
	}
	return s, nil
}

func (s *Server) loadCert(certFile, keyFile string) error {
	c, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return fmt.Errorf("api TLS: %w", err)
	}
	s.cert.Store(&c)
	return nil
}

// TLS reports whether the server speaks HTTPS.
func (s *Server) TLS() bool { return s.cert.Load() != nil }

// ReloadTLS reads the certificate and key again (a renewed certificate)
// for the connections that follow. On error the old pair stays in use.
// A server without TLS cannot take one up: listen again for that.
func (s *Server) ReloadTLS(certFile, keyFile string) error {
	if !s.TLS() {
		return errors.New("api: the server listens without TLS")
	}
	return s.loadCert(certFile, keyFile)
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
