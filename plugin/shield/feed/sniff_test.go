package feed

import (
	"net/url"
	"strings"
	"testing"
)

func TestSniff(t *testing.T) {
	for _, tc := range []struct {
		ctype, head, want string
	}{
		{"text/plain", "0.0.0.0 bad.example\n", ""},
		{"", "bad.example\n", ""},
		{"", "||bad.example^\n", ""},
		{"", "[Adblock Plus 2.0]\n! Title: x\n", ""},
		{"", "[Adblock Plus]", ""},
		{"", "[", ""},
		{"", "# comment\nbad.example", ""},
		{"", "address=/bad.example/0.0.0.0", ""},
		{"", "$TTL 300\n@ SOA . . 1 1 1 1 1", ""},
		{"", "; rpz zone\n*.bad.example CNAME .", ""},
		{"", "", ""},
		{"application/octet-stream", "\x1f\x8b\x08", ""},
		{"text/plain; charset=utf-8", "<!doctype html>", RefusedHTML},
		{"text/html", "bad.example", RefusedHTML},
		{"TEXT/HTML; charset=ISO-8859-1", "", RefusedHTML},
		{"application/xhtml+xml", "", RefusedHTML},
		{"", "<!DOCTYPE html><html>", RefusedHTML},
		{"", "\ufeff  \r\n\t<HTML lang=en>", RefusedHTML},
		{"", "<head><title>403", RefusedHTML},
		{"", "<body>", RefusedHTML},
		{"", "<!-- cloudflare -->", RefusedHTML},
		{"", "<?xml version=\"1.0\"?><Error><Code>AccessDenied", RefusedHTML},
		{"", "<bad.example>", ""},
		{"application/json", "bad.example", RefusedJSON},
		{"application/problem+json", "", RefusedJSON},
		{"", `{"error":"quota"}`, RefusedJSON},
		{"", "\n\n  {", RefusedJSON},
		{"", `["a.example","b.example"]`, RefusedJSON},
		{"", "[ {\"url\": 1} ]", RefusedJSON},
		{"", "[1, 2]", RefusedJSON},
		{"", "[]", RefusedJSON},
		{"", "[null]", RefusedJSON},
		{"", "[-1]", RefusedJSON},
		{"not a / media type", "bad.example", ""},
	} {
		if got := Sniff(tc.ctype, []byte(tc.head)); got != tc.want {
			t.Errorf("Sniff(%q, %q) = %q, want %q", tc.ctype, tc.head, got, tc.want)
		}
	}
}

// FuzzSniff checks that no line a list format starts with is ever taken
// for a document: a rule line opens with a name, an address, "||", "@@",
// "*.", "!", "#", ";", "$" or a dnsmasq keyword.
func FuzzSniff(f *testing.F) {
	for _, s := range []string{"bad.example", "0.0.0.0 x", "||x^", "@@||x^", "*.x", "! c", "# c", "; c", "$TTL 1", "address=/x/", "[Adblock Plus 2.0]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := Sniff("", []byte(s))
		if got == "" {
			return
		}
		h := strings.TrimLeft(strings.TrimPrefix(s, "\ufeff"), " \t\r\n\f\v")
		if h == "" || (h[0] != '<' && h[0] != '{' && h[0] != '[') {
			t.Fatalf("Sniff(%q) = %q for a body that opens like a list", s, got)
		}
		if h[0] == '[' && len(h) > 1 && (h[1] >= 'A' && h[1] <= 'Z' || h[1] >= 'a' && h[1] <= 'z') {
			t.Fatalf("Sniff(%q) = %q for an adblock header", s, got)
		}
	})
}

func TestRedact(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"https://feeds.example/list.txt", "https://feeds.example/list.txt"},
		{"https://user:pass@feeds.example/list.txt", "https://xxxxx@feeds.example/list.txt"},
		{"https://token@feeds.example/x", "https://xxxxx@feeds.example/x"},
		{"https://h/x?auth-key=abc&format=hosts", "https://h/x?auth-key=xxxxx&format=hosts"},
		{"https://h/x?API_KEY=abc", "https://h/x?API_KEY=xxxxx"},
		{"https://h/x?access_token=abc&x=1", "https://h/x?access_token=xxxxx&x=1"},
		{"https://h/x?X-Amz-Signature=abc", "https://h/x?X-Amz-Signature=xxxxx"},
		{"https://h/x?password=a&sid=1", "https://h/x?password=xxxxx&sid=1"},
		{"https://h/x?0123456789abcdef", "https://h/x?xxxxx"},
		{"https://h/x#frag", "https://h/x"},
		{"http://[::1", "(unparsable URL)"},
		{"http://h/x?%6Bey=secret", "http://h/x?%6Bey=xxxxx"},
	} {
		if got := Redact(tc.in); got != tc.want {
			t.Errorf("Redact(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// FuzzRedact checks that the password and the username of a URL never
// survive redaction, nor the value of a "key" parameter.
func FuzzRedact(f *testing.F) {
	f.Add("user", "pass", "h.example", "v")
	f.Fuzz(func(t *testing.T, user, pass, host, value string) {
		u := &url.URL{Scheme: "https", User: url.UserPassword(user, pass), Host: host, Path: "/l",
			RawQuery: "key=" + url.QueryEscape(value)}
		out := Redact(u.String())
		for _, secret := range []string{user, pass, value} {
			if len(secret) >= 4 && strings.Contains(out, secret) && !strings.Contains(host, secret) && !strings.Contains("https://xxxxx@/l?key=xxxxx", secret) {
				t.Fatalf("Redact(%q) = %q keeps %q", u.String(), out, secret)
			}
		}
	})
}
