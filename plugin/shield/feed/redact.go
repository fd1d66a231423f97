package feed

import (
	"net/url"
	"strings"
)

// secretParams are substrings of query parameter names whose values are
// credentials in the feed URLs of common providers (an "auth-key",
// "apikey", "token", a signed URL's "Signature").
var secretParams = []string{"key", "token", "auth", "secret", "pass", "sig", "session", "cred", "code"}

// Redact returns raw for a log line or a status page: the user
// information is replaced by "xxxxx", and so are the values of query
// parameters whose names look like credentials and bare query values; the
// fragment is dropped. A key inside the path cannot be told from a path
// and stays. A URL
// that does not parse is replaced whole, since it may hold anything.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return redactURL(u)
}

func redactURL(u *url.URL) string {
	c := *u
	if c.User != nil {
		c.User = url.User("xxxxx")
	}
	c.Fragment, c.RawFragment = "", ""
	if c.RawQuery != "" {
		parts := strings.Split(c.RawQuery, "&")
		for i, p := range parts {
			name, _, hasValue := strings.Cut(p, "=")
			if !hasValue && p != "" {
				// A bare value ("?0123abcd…") is as likely a token as not.
				parts[i] = "xxxxx"
				continue
			}
			lname := strings.ToLower(name)
			if un, err := url.QueryUnescape(name); err == nil {
				lname = strings.ToLower(un)
			}
			for _, s := range secretParams {
				if strings.Contains(lname, s) {
					parts[i] = name + "=xxxxx"
					break
				}
			}
		}
		c.RawQuery = strings.Join(parts, "&")
	}
	return c.String()
}
