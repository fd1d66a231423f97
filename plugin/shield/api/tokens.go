package api

import (
	"bufio"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"runtime"
	"strings"
)

// MinTokenLen is the shortest token accepted in the tokens file.
const MinTokenLen = 16

var tokenName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// Scope is what a token may do.
type Scope uint8

// Scopes. A token without a scope in the file has ScopeWrite, as before
// scopes existed.
const (
	ScopeRead  Scope = iota + 1 // GET and HEAD: status, explain, lists, audit, any page
	ScopeWrite                  // everything
)

// String returns "read" or "write".
func (s Scope) String() string {
	if s == ScopeRead {
		return "read"
	}
	return "write"
}

// Allows reports whether a token of scope s may make a request with
// method.
func (s Scope) Allows(method string) bool {
	return s == ScopeWrite || method == http.MethodGet || method == http.MethodHead
}

// Tokens is the set of bearer tokens the API accepts. Only SHA-256 sums
// of the tokens are kept.
type Tokens struct {
	names  []string
	sums   [][sha256.Size]byte
	scopes []Scope
}

// Len returns the number of tokens.
func (t *Tokens) Len() int {
	if t == nil {
		return 0
	}
	return len(t.names)
}

// ParseTokens reads "name:token" or "name:token:scope" lines, the scope
// "read" or "write" (no scope is write). Blank lines and lines starting
// with '#' are skipped. Names are letters, digits, '_', '-' and '.' (at
// most 64) and unique; tokens are at least MinTokenLen printable ASCII
// characters without spaces or ':'. At least one token is required.
func ParseTokens(r io.Reader) (*Tokens, error) {
	t := &Tokens{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 64<<10)
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		if s == "" || s[0] == '#' {
			continue
		}
		fields := strings.Split(s, ":")
		if len(fields) < 2 {
			return nil, fmt.Errorf("line %d: want NAME:TOKEN or NAME:TOKEN:SCOPE", line)
		}
		if len(fields) > 3 {
			return nil, fmt.Errorf("line %d: want NAME:TOKEN or NAME:TOKEN:SCOPE; a token may not hold ':'", line)
		}
		name, tok, scope := fields[0], fields[1], ScopeWrite
		if len(fields) == 3 {
			switch fields[2] {
			case "read":
				scope = ScopeRead
			case "write":
			default:
				return nil, fmt.Errorf("line %d: scope %q of %q: want read or write", line, fields[2], name)
			}
		}
		if !tokenName.MatchString(name) {
			return nil, fmt.Errorf("line %d: invalid token name %q: use letters, digits, '_', '-' and '.', at most 64", line, name)
		}
		if len(tok) < MinTokenLen {
			return nil, fmt.Errorf("line %d: token of %q is shorter than %d characters", line, name, MinTokenLen)
		}
		for _, c := range []byte(tok) {
			if c <= ' ' || c >= 0x7f {
				return nil, fmt.Errorf("line %d: token of %q has a space or non-printable character", line, name)
			}
		}
		for _, n := range t.names {
			if n == name {
				return nil, fmt.Errorf("line %d: duplicate token name %q", line, name)
			}
		}
		t.names = append(t.names, name)
		t.sums = append(t.sums, sha256.Sum256([]byte(tok)))
		t.scopes = append(t.scopes, scope)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(t.names) == 0 {
		return nil, errors.New("no tokens")
	}
	return t, nil
}

// LoadTokens reads the tokens file at path. Where file modes mean
// something (not on windows or plan9), a file that its group or others
// may read or write is refused: anyone who can read it can manage the
// resolver.
func LoadTokens(path string) (*Tokens, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil {
		return nil, err
	} else if perm := fi.Mode().Perm(); modesMatter && perm&0o077 != 0 {
		return nil, fmt.Errorf("%s: mode %04o lets its group or others read or change it: chmod 0600 it", path, perm)
	}
	t, err := ParseTokens(io.LimitReader(f, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// modesMatter reports whether file permission bits are enforced.
var modesMatter = runtime.GOOS != "windows" && runtime.GOOS != "plan9"

// Check returns the name of the token given in an Authorization header
// value ("Bearer TOKEN", the scheme in any case). Every configured token
// is compared, in constant time, whatever matches, so the time taken does
// not tell which token is close.
func (t *Tokens) Check(header string) (name string, ok bool) {
	name, _, ok = t.Authenticate(header)
	return name, ok
}

// Authenticate is Check, and returns the token's scope as well.
func (t *Tokens) Authenticate(header string) (name string, scope Scope, ok bool) {
	// The scheme is case-insensitive (RFC 9110, section 11.1).
	const scheme = "Bearer "
	if t == nil || len(header) <= len(scheme) || !strings.EqualFold(header[:len(scheme)], scheme) {
		return "", 0, false
	}
	tok := header[len(scheme):]
	sum := sha256.Sum256([]byte(tok))
	hit := -1
	for i := range t.sums {
		if subtle.ConstantTimeCompare(sum[:], t.sums[i][:]) == 1 {
			hit = i
		}
	}
	if hit < 0 {
		return "", 0, false
	}
	return t.names[hit], t.scopes[hit], true
}
