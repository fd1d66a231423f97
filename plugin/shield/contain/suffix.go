package contain

import (
	"strings"

	"golang.org/x/net/publicsuffix"
)

// IsPublicSuffix reports whether the normalised name is a top-level
// domain or a public suffix of the public suffix list, in its ICANN
// section (co.uk) or its private one (duckdns.org): a name under which
// unrelated parties register domains. An emergency block of one would
// cut off every domain below it.
func IsPublicSuffix(name string) bool {
	if name == "" {
		return false
	}
	if strings.IndexByte(name, '.') < 0 {
		return true // any TLD, listed or not (corp, internal, ...)
	}
	ps, _ := publicsuffix.PublicSuffix(name)
	return ps == name
}

// checkBlockName returns an ErrPublicSuffix error for a public suffix.
func checkBlockName(name string) error {
	if IsPublicSuffix(name) {
		return refuse(ErrPublicSuffix, "%s is a public suffix; blocking it blocks every domain registered under it; send force to override", name)
	}
	return nil
}
