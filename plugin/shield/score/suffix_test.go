package score

import (
	"bytes"
	"fmt"
	"go/format"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/net/publicsuffix"
)

// pslRules returns every rule that golang.org/x/net/publicsuffix knows,
// ICANN and private sections, in the list's syntax ("*.ck", "!www.ck").
// The library does not export them; its generated table_test.go holds the
// rule list its tables were built from, and the module's source is in the
// module cache, so the test reads it from there. The test is skipped when
// the go tool or the module source is not at hand.
func pslRules(t testing.TB) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "golang.org/x/net").Output()
	if err != nil {
		t.Skipf("cannot locate golang.org/x/net: %v", err)
	}
	dir := strings.TrimSpace(string(out))
	src, err := os.ReadFile(filepath.Join(dir, "publicsuffix", "table_test.go"))
	if err != nil {
		t.Skipf("cannot read the library's rule list: %v", err)
	}
	const start = "var rules = [...]string{\n"
	i := bytes.Index(src, []byte(start))
	if i < 0 {
		t.Fatal("table_test.go has no rules array")
	}
	body := src[i+len(start):]
	body = body[:bytes.Index(body, []byte("\n}\n"))]
	var rules []string
	for _, line := range strings.Split(string(body), "\n") {
		line = strings.TrimSuffix(strings.TrimSpace(line), ",")
		r, err := strconv.Unquote(line)
		if err != nil {
			t.Fatalf("rule %q: %v", line, err)
		}
		rules = append(rules, r)
	}
	if len(rules) < 5000 {
		t.Fatalf("only %d rules read", len(rules))
	}
	return rules
}

// libraryRegistered is what the memo must give: the library's eTLD+1, or
// "" where the library has none.
func libraryRegistered(name string) string {
	reg, err := publicsuffix.EffectiveTLDPlusOne(name)
	if err != nil {
		return ""
	}
	return reg
}

// ruleNames returns the names that test a rule: the rule's own name and
// names one and two labels below it; for a wildcard rule "*.p", p and
// names one, two and three labels below p; for an exception "!e.p", e.p
// and names one and two labels below it.
func ruleNames(rule string) []string {
	switch {
	case strings.HasPrefix(rule, "*."):
		p := rule[2:]
		return []string{p, "x." + p, "y.x." + p, "z.y.x." + p}
	case strings.HasPrefix(rule, "!"):
		e := rule[1:]
		return []string{e, "x." + e, "y.x." + e}
	}
	return []string{rule, "x." + rule, "y.x." + rule}
}

// TestSuffixEveryRule walks every rule of the public suffix list that
// golang.org/x/net/publicsuffix knows and compares the memo's registered
// domain with the library's EffectiveTLDPlusOne: there must be no
// difference.
func TestSuffixEveryRule(t *testing.T) {
	rules := pslRules(t)
	m := newSuffixMemo()
	names, differ := 0, 0
	var examples []string
	for _, rule := range rules {
		bad := false
		for _, n := range ruleNames(rule) {
			names++
			want := libraryRegistered(n)
			got := ""
			if reg, _ := m.registered([]byte(n)); reg >= 0 {
				got = n[reg:]
			}
			if got != want {
				bad = true
				if len(examples) < 10 {
					examples = append(examples, fmt.Sprintf("%s (rule %s): memo %q, library %q", n, rule, got, want))
				}
			}
		}
		if bad {
			differ++
		}
	}
	// Names the library takes as IP addresses have no registered domain.
	for _, n := range []string{"1.2.3.4", "10.0.0.255", "0.0.0.0", "999.1.1.1", "256.1.1.1", "01.2.3.4",
		"1.2.3.04", "a.1.2.3", "1.2.3.4.5", "1.2.3", "1.2.3.4a"} {
		want := libraryRegistered(n)
		got := ""
		if reg, _ := m.registered([]byte(n)); reg >= 0 {
			got = n[reg:]
		}
		if got != want {
			t.Errorf("%s: memo %q, library %q", n, got, want)
		}
	}
	t.Logf("%d rules, %d names: %d rules differ from the library", len(rules), names, differ)
	if differ > 0 {
		t.Errorf("%d of %d rules differ from the library, for example:\n%s", differ, len(rules), strings.Join(examples, "\n"))
	}
}

// suffixParentsOf returns the names under which some rule of rules lies
// (the wildcard parent p of "*.p", the parent p of an exception "!e.p",
// every proper ancestor of a rule), of two or more labels, sorted; and the
// most labels of a rule.
func suffixParentsOf(rules []string) (parents []string, maxLabels int) {
	set := map[string]bool{}
	for _, r := range rules {
		labels := strings.Split(strings.TrimPrefix(r, "!"), ".")
		maxLabels = max(maxLabels, len(labels))
		for i := 1; i < len(labels)-1; i++ {
			set[strings.Join(labels[i:], ".")] = true
		}
	}
	for p := range set {
		parents = append(parents, p)
	}
	sort.Strings(parents)
	return parents, maxLabels
}

// TestSuffixParentsCurrent checks that suffix_table.go was generated from
// the rules of the library in use.
func TestSuffixParentsCurrent(t *testing.T) {
	parents, maxLabels := suffixParentsOf(pslRules(t))
	if maxLabels != maxSuffixLabels || strings.Join(parents, " ") != strings.Join(suffixParents[:], " ") {
		t.Errorf("suffix_table.go is stale (%d parents, %d labels at most; the library has %d, %d): run go generate",
			len(suffixParents), maxSuffixLabels, len(parents), maxLabels)
	}
}

// TestGenerateSuffixParents writes suffix_table.go from the library's
// rules. It runs only with -generate (see go:generate in suffix.go).
func TestGenerateSuffixParents(t *testing.T) {
	if !*generate {
		t.Skip("run with -generate to rewrite suffix_table.go")
	}
	parents, maxLabels := suffixParentsOf(pslRules(t))
	var b bytes.Buffer
	fmt.Fprintf(&b, "// Code generated by TestGenerateSuffixParents (go generate); DO NOT EDIT.\n\n")
	fmt.Fprintf(&b, "package score\n\n")
	fmt.Fprintf(&b, "// maxSuffixLabels is the most labels of a rule of the public suffix list.\n")
	fmt.Fprintf(&b, "const maxSuffixLabels = %d\n\n", maxLabels)
	fmt.Fprintf(&b, "// suffixParents are the names of two or more labels under which a rule of\n")
	fmt.Fprintf(&b, "// the public suffix list lies (%d of them), sorted.\n", len(parents))
	fmt.Fprintf(&b, "var suffixParents = [...]string{\n")
	line := 0
	for _, p := range parents {
		q := strconv.Quote(p) + ","
		if line > 0 && line+len(q)+1 > 100 {
			b.WriteString("\n")
			line = 0
		}
		if line > 0 {
			b.WriteString(" ")
			line++
		}
		b.WriteString(q)
		line += len(q)
	}
	b.WriteString("\n}\n")
	src, err := format.Source(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile("suffix_table.go", src, 0o644); err != nil {
		t.Fatal(err)
	}
}
