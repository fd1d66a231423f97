// Command coredns is CoreDNS built with the shield protective-DNS plugin
// and a curated set of standard plugins (see package bundle). Run it with
// -conf Corefile.example to start a protective resolver on port 1053.
package main

import (
	"github.com/coredns/coredns/coremain"

	_ "github.com/dnsshield/shield/cmd/coredns/bundle"
)

func main() { coremain.Run() }
