// Package test holds shield's integration tests. Each test starts a real
// CoreDNS server (the shield distribution from cmd/coredns/bundle) from a
// Corefile string on 127.0.0.1, with a loopback upstream, and queries it
// over the wire.
package test
