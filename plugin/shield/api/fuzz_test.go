package api

import (
	"strings"
	"testing"
)

var stringsReader = strings.NewReader

// FuzzDecodeQuarantine and FuzzDecodeBlock feed arbitrary bodies to the
// decoders: they must not panic, and what they accept is complete.
func FuzzDecodeQuarantine(f *testing.F) {
	f.Add([]byte(`{"client":"10.0.0.5","ttl":"1h","reason":"beacon"}`))
	f.Add([]byte(`{"client":"10.0.0.0/24","reason":"worm"}`))
	f.Add([]byte(`{"client":"10.0.0.5","ttl":"-1h","reason":"r"}`))
	f.Add([]byte(`{"client":1}`))
	f.Add([]byte(`{"client":"a","reason":"b","path":"/etc/shadow"}`))
	f.Add([]byte(`{"client":"10.0.0.5","reason":"r","client":"10.0.0.6"}`))
	f.Add([]byte(`{"client":"10.0.0.5","reason":"evil\u202egnp.exe","force":true}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		req, ttl, err := DecodeQuarantine(data)
		if err == nil && (req.Client == "" || req.Reason == "" || ttl < 0 || len(req.Reason) > maxReason ||
			strings.IndexFunc(req.Reason, badReasonRune) >= 0) {
			t.Fatalf("accepted %+v ttl %s", req, ttl)
		}
	})
}

func FuzzDecodeBlock(f *testing.F) {
	f.Add([]byte(`{"name":"evil.test","ttl":"30m","reason":"campaign"}`))
	f.Add([]byte(`{"name":"evil.test","reason":"x"} trailing`))
	f.Add([]byte(`{"name":"\u0000","reason":"\ud800"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		req, ttl, err := DecodeBlock(data)
		if err == nil && (req.Name == "" || req.Reason == "" || ttl < 0 || strings.IndexFunc(req.Reason, badReasonRune) >= 0) {
			t.Fatalf("accepted %+v ttl %s", req, ttl)
		}
	})
}

func FuzzParseTokens(f *testing.F) {
	f.Add("ops:0123456789abcdef\n# c\nsoc:fedcba9876543210\n")
	f.Add("ops:short\n")
	f.Fuzz(func(t *testing.T, s string) {
		ts, err := ParseTokens(stringsReader(s))
		if err == nil && ts.Len() == 0 {
			t.Fatal("no error and no tokens")
		}
	})
}
