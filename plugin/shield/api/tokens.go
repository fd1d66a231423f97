package api

import (
	"bufio"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
)

// MinTokenLen is the shortest token accepted in the tokens file.
const MinTokenLen = 16

var tokenName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// Tokens is the set of bearer tokens the API accepts. Only SHA-256 sums
// of the tokens are kept.
type Tokens struct {
	names []string
	sums  [][sha256.Size]byte
}

// Len returns the number of tokens.
func (t *Tokens) Len() int {
	if t == nil {
		return 0
	}
	return len(t.names)
}

// ParseTokens reads "name:token" lines. Blank lines and lines starting
// with '#' are skipped. Names are letters, digits, '_', '-' and '.' (at
// most 64) and unique; tokens are at least MinTokenLen printable ASCII
// characters without spaces. At least one token is required.
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
		name, tok, ok := strings.Cut(s, ":")
		if !ok {
			return nil, fmt.Errorf("line %d: want NAME:TOKEN", line)
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
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(t.names) == 0 {
		return nil, errors.New("no tokens")
	}
	return t, nil
}

// LoadTokens reads the tokens file at path.
func LoadTokens(path string) (*Tokens, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	t, err := ParseTokens(io.LimitReader(f, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// Check returns the name of the token given in an Authorization header
// value ("Bearer TOKEN", the scheme in any case). Every configured token is compared, in constant
// time, whatever matches, so the time taken does not tell which token is
// close.
func (t *Tokens) Check(header string) (name string, ok bool) {
	// The scheme is case-insensitive (RFC 9110, section 11.1).
	const scheme = "Bearer "
	if t == nil || len(header) <= len(scheme) || !strings.EqualFold(header[:len(scheme)], scheme) {
		return "", false
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
		return "", false
	}
	return t.names[hit], true
}
