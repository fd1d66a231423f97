package feed

import (
	"encoding/base64"
	"fmt"
	"os"
	"strings"

	"github.com/miekg/dns"
)

// TSIG is the key that signs a zone transfer (RFC 8945).
type TSIG struct {
	Name      string // the key name, as the primary's key statement spells it
	Algorithm string // a BIND algorithm name: hmac-sha256, hmac-sha512, ...
	Secret    string // base64
}

// tsigAlgorithms maps the algorithm names BIND accepts in a key statement
// to miekg/dns's. hmac-md5 is not offered: miekg/dns no longer signs with
// it.
var tsigAlgorithms = map[string]string{
	"hmac-sha1":   dns.HmacSHA1,
	"hmac-sha224": dns.HmacSHA224,
	"hmac-sha256": dns.HmacSHA256,
	"hmac-sha384": dns.HmacSHA384,
	"hmac-sha512": dns.HmacSHA512,
}

// TSIGAlgorithm returns miekg/dns's name for the BIND algorithm name alg
// (case-insensitive), or false when it is not supported.
func TSIGAlgorithm(alg string) (string, bool) {
	a, ok := tsigAlgorithms[strings.ToLower(alg)]
	return a, ok
}

// ReadTSIGSecret returns the base64 secret held in the file at path. The
// file holds the secret alone, as the secret of a BIND key statement, or a
// key statement with a `secret "...";` line (tsig-keygen's output). A file
// that other users may read or write is refused, as is anything that is
// not valid base64.
func ReadTSIGSecret(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("tsig secret file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("tsig secret file %s is not a regular file", path)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("tsig secret file %s has mode %#o: others may read it; chmod 600 %s", path, fi.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("tsig secret file: %w", err)
	}
	secret, err := ParseTSIGSecret(string(b))
	if err != nil {
		return "", fmt.Errorf("tsig secret file %s: %w", path, err)
	}
	return secret, nil
}

// ParseTSIGSecret returns the base64 secret in text: the secret alone, or
// the quoted value of a `secret` clause. It never quotes the text in an
// error.
func ParseTSIGSecret(text string) (string, error) {
	s := strings.TrimSpace(text)
	if i := strings.Index(s, "secret"); i >= 0 && strings.ContainsAny(s, "{\"") {
		rest := s[i+len("secret"):]
		open := strings.IndexByte(rest, '"')
		if open < 0 {
			return "", fmt.Errorf("a secret clause without a quoted value")
		}
		end := strings.IndexByte(rest[open+1:], '"')
		if end < 0 {
			return "", fmt.Errorf("a secret clause without a closing quote")
		}
		s = rest[open+1 : open+1+end]
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return "", fmt.Errorf("no secret")
	}
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return "", fmt.Errorf("the secret is not base64")
	}
	if len(raw) < 10 {
		return "", fmt.Errorf("the secret is %d bytes; want at least 10 (RFC 8945)", len(raw))
	}
	return s, nil
}
