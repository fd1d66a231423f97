// Package bundle assembles the shield distribution of CoreDNS: the DNS
// server, the shield plugin, and a curated set of standard plugins, with
// shield placed after acl and before cache in the plugin chain.
//
// Importing it (for its side effects) is all a main package or an
// integration test needs to run a Corefile that uses shield. It does not
// import core/plugin, which would pull in every plugin CoreDNS has,
// Kubernetes and the cloud back ends included.
package bundle

import (
	"slices"

	"github.com/coredns/coredns/core/dnsserver"

	// The standard plugins shipped with shield. Keep this list and
	// Directives below in step.
	_ "github.com/coredns/caddy/onevent"
	_ "github.com/coredns/coredns/plugin/acl"
	_ "github.com/coredns/coredns/plugin/any"
	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/bufsize"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/cancel"
	_ "github.com/coredns/coredns/plugin/chaos"
	_ "github.com/coredns/coredns/plugin/debug"
	_ "github.com/coredns/coredns/plugin/dnstap"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/file"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/header"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/hosts"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/local"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/loop"
	_ "github.com/coredns/coredns/plugin/metadata"
	_ "github.com/coredns/coredns/plugin/metrics"
	_ "github.com/coredns/coredns/plugin/minimal"
	_ "github.com/coredns/coredns/plugin/nsid"
	_ "github.com/coredns/coredns/plugin/pprof"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
	_ "github.com/coredns/coredns/plugin/rewrite"
	_ "github.com/coredns/coredns/plugin/root"
	_ "github.com/coredns/coredns/plugin/template"
	_ "github.com/coredns/coredns/plugin/timeouts"
	_ "github.com/coredns/coredns/plugin/tls"
	_ "github.com/coredns/coredns/plugin/view"
	_ "github.com/coredns/coredns/plugin/whoami"

	_ "github.com/dnsshield/shield/plugin/shield"
)

// Directives is the plugin order of this distribution: CoreDNS's own order
// restricted to the plugins above, with shield after acl and before cache.
// Placed there, shield checks answers served from the cache against the
// lists in force, and its block answers never enter the cache.
var Directives = []string{
	"root",
	"metadata",
	"cancel",
	"timeouts",
	"reload",
	"nsid",
	"bufsize",
	"bind",
	"debug",
	"ready",
	"health",
	"pprof",
	"prometheus",
	"errors",
	"log",
	"dnstap",
	"local",
	"any",
	"chaos",
	"loadbalance",
	"rewrite",
	"acl",
	"shield",
	"cache",
	"header",
	"tls",
	"minimal",
	"template",
	"hosts",
	"file",
	"loop",
	"forward",
	"whoami",
	"view",
}

func init() {
	dnsserver.Directives = slices.Clone(Directives)
}
