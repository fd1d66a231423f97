package blocklist

import (
	"bufio"
	"bytes"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/dnsshield/shield/internal/corpus"
)

// realLists are the shared test data files in a list format, with the
// format each is published in. The file name prefix says the format; the
// ShadowWhisperer allowlist is a domains list with inline comments and the
// HaGeZi AdGuard file holds only rules a name match cannot express.
var realLists = []struct {
	file string
	want Format
}{
	{"adblock_hagezi_spam_tlds_allow_exceptions.txt.gz", FormatAdblock},
	{"adblock_hagezi_spam_tlds_ublock_modifiers.txt.gz", FormatAdblock},
	{"adblock_hagezi_tif_mini.txt.gz", FormatAdblock},
	{"adblock_hagezi_whitelist_referral_exceptions.txt.gz", FormatAdblock},
	{"adblock_urlhaus_filter_agh.txt.gz", FormatAdblock},
	{"adblock_urlhaus_filter_ubo_urls.txt.gz", FormatAdblock},
	{"adguard_hagezi_regex_wildcard_rules.txt.gz", FormatAdblock},
	{"benign_allowlist_shadowwhisperer.txt.gz", FormatDomains},
	{"dnsmasq_hagezi_fake.txt.gz", FormatDnsmasq},
	{"dnsmasq_urlhaus_filter.conf.gz", FormatDnsmasq},
	{"domains_blocklistproject_phishing.txt.gz", FormatDomains},
	{"domains_hagezi_dyndns.txt.gz", FormatDomains},
	{"domains_hagezi_tif_mini.txt.gz", FormatDomains},
	{"domains_nrd_czds_1day_cryphorix.txt.gz", FormatDomains},
	{"domains_nrd_phishing_14day_xruffkez.txt.gz", FormatDomains},
	{"domains_shadowwhisperer_dynamic_dns.txt.gz", FormatDomains},
	{"domains_shadowwhisperer_malware.txt.gz", FormatDomains},
	{"domains_stevenblack_unified_trimmed.txt.gz", FormatDomains},
	{"domains_urlhaus_filter.txt.gz", FormatDomains},
	{"hosts_badd_boyz.txt.gz", FormatHosts},
	{"hosts_blocklistproject_ransomware.txt.gz", FormatHosts},
	{"hosts_blocklistproject_scam.txt.gz", FormatHosts},
	{"hosts_eth_phishing_detect.txt.gz", FormatHosts},
	{"hosts_hagezi_light.txt.gz", FormatHosts},
	{"hosts_urlhaus_filter.txt.gz", FormatHosts},
	{"rpz_hagezi_dyndns.txt.gz", FormatRPZ},
	{"rpz_urlhaus_filter.conf.gz", FormatRPZ},
	{"wildcard_hagezi_tif_mini.txt.gz", FormatWildcard},
}

// tifMiniNames is the entry count in the header of the HaGeZi TIF mini
// list ("Number of entries: 167478"), the same in all three syntaxes.
const tifMiniNames = 167478

// loadReal detects and parses one data file, checking that Detect agrees
// with the published format.
func loadReal(t *testing.T, file string, want Format) (Stats, *mapSink) {
	t.Helper()
	data, err := io.ReadAll(corpus.Open(t, file))
	if err != nil {
		t.Fatalf("read %s: %v", file, err)
	}
	if got := Detect(data[:min(len(data), detectHead)]); got != want {
		t.Errorf("Detect = %v, want %v", got, want)
	}
	sink := newMapSink()
	st, err := Parse(bytes.NewReader(data), want, sink)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if st.Entries != sink.adds {
		t.Errorf("Entries = %d, Add called %d times", st.Entries, sink.adds)
	}
	if nl := bytes.Count(data, []byte{'\n'}); st.Lines != nl && st.Lines != nl+1 {
		t.Errorf("Lines = %d, file has %d newlines", st.Lines, nl)
	}
	return st, sink
}

func TestRealLists(t *testing.T) {
	checkSourcesListed(t)
	for _, rl := range realLists {
		t.Run(strings.TrimSuffix(rl.file, ".gz"), func(t *testing.T) {
			st, sink := loadReal(t, rl.file, rl.want)
			t.Logf("%-52s %-8v lines %7d  entries %7d  names %7d  comments %5d  invalid %3d  unsupported %5d",
				rl.file, rl.want, st.Lines, st.Entries, len(sink.m), st.Comments, st.Invalid, st.Unsupported)
			for _, s := range st.Samples {
				t.Logf("  %s", s)
			}
			if rules := st.Lines - st.Comments; float64(st.Invalid) >= 0.01*float64(rules) && st.Invalid > 0 {
				t.Errorf("%d of %d rule lines invalid (>= 1%%): %q", st.Invalid, rules, st.Samples)
			}
			if rl.file == "adguard_hagezi_regex_wildcard_rules.txt.gz" {
				// Regexes and in-label wildcards only: all skipped, none garbage.
				if st.Entries != 0 || st.Unsupported == 0 || st.Invalid != 0 {
					t.Errorf("regex list: %+v", countsOf(st))
				}
				return
			}
			if st.Entries == 0 {
				t.Errorf("no entries: %+v", countsOf(st))
			}
		})
	}
}

// checkSourcesListed fails when SOURCES.md lists a list-format file that
// realLists leaves out, and checks the line counts it gives.
func checkSourcesListed(t *testing.T) {
	t.Helper()
	r := corpus.Open(t, "SOURCES.md")
	known := map[string]bool{}
	for _, rl := range realLists {
		known[rl.file] = true
	}
	listed := 0
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		row := strings.ReplaceAll(sc.Text(), `\|`, "")
		cells := strings.Split(row, "|")
		if len(cells) < 8 || !strings.HasSuffix(strings.TrimSpace(cells[1]), ".gz") {
			continue
		}
		file := strings.TrimSpace(cells[1])
		prefix, _, _ := strings.Cut(file, "_")
		switch prefix {
		case "hosts", "domains", "wildcard", "adblock", "dnsmasq", "rpz", "adguard":
		default:
			if file != "benign_allowlist_shadowwhisperer.txt.gz" {
				continue
			}
		}
		listed++
		if !known[file] {
			t.Errorf("SOURCES.md lists %s, which TestRealLists does not parse", file)
		}
		if _, err := strconv.Atoi(strings.TrimSpace(cells[5])); err != nil {
			t.Errorf("SOURCES.md: %s: lines column %q", file, cells[5])
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if listed != len(realLists) {
		t.Errorf("SOURCES.md lists %d list files, realLists has %d", listed, len(realLists))
	}
}

// TestRealTifMiniSameNames parses the one HaGeZi list published in three
// syntaxes and expects the same names, each blocked with its subdomains.
func TestRealTifMiniSameNames(t *testing.T) {
	var sets [3][]string
	for i, rl := range []struct {
		file string
		f    Format
	}{
		{"adblock_hagezi_tif_mini.txt.gz", FormatAdblock},
		{"wildcard_hagezi_tif_mini.txt.gz", FormatWildcard},
		{"domains_hagezi_tif_mini.txt.gz", FormatDomains},
	} {
		st, sink := loadReal(t, rl.file, rl.f)
		if st.Invalid != 0 || st.Unsupported != 0 {
			t.Errorf("%s: %+v %q", rl.file, countsOf(st), st.Samples)
		}
		for n, a := range sink.m {
			if a != [2]Action{ActBlock, ActBlock} {
				t.Fatalf("%s: %s = %v/%v, want block/block", rl.file, n, a[0], a[1])
			}
		}
		sets[i] = slices.Sorted(maps.Keys(sink.m))
		if len(sets[i]) != tifMiniNames {
			t.Errorf("%s: %d names, want %d", rl.file, len(sets[i]), tifMiniNames)
		}
	}
	if !slices.Equal(sets[0], sets[1]) || !slices.Equal(sets[0], sets[2]) {
		t.Errorf("TIF mini name sets differ: adblock %d, wildcard %d, domains %d", len(sets[0]), len(sets[1]), len(sets[2]))
	}
}

// TestRealSkippedRules checks that rules a name match cannot express are
// counted as unsupported, not lost and not garbage.
func TestRealSkippedRules(t *testing.T) {
	t.Run("ubo url paths", func(t *testing.T) {
		st, sink := loadReal(t, "adblock_urlhaus_filter_ubo_urls.txt.gz", FormatAdblock)
		if st.Unsupported == 0 || st.Invalid != 0 {
			t.Errorf("%+v", countsOf(st))
		}
		// The bare host lines mixed in still count.
		if a, ok := sink.m["0022a601.pphost.net"]; !ok || a != [2]Action{ActBlock, ActBlock} {
			t.Errorf("bare host line: %v %v", a, ok)
		}
	})
	t.Run("ublock domain modifiers", func(t *testing.T) {
		st, sink := loadReal(t, "adblock_hagezi_spam_tlds_ublock_modifiers.txt.gz", FormatAdblock)
		if st.Unsupported == 0 || st.Invalid != 0 {
			t.Errorf("%+v", countsOf(st))
		}
		// "||actor^$doc" blocks the TLD; "||africa^$doc,domain=~..." is skipped.
		if _, ok := sink.m["actor"]; !ok {
			t.Error(`"||actor^$doc" not parsed`)
		}
		if _, ok := sink.m["africa"]; ok {
			t.Error(`"||africa^$doc,domain=~nation.africa" parsed as a plain block`)
		}
	})
	t.Run("exceptions with in-label wildcards", func(t *testing.T) {
		st, sink := loadReal(t, "adblock_hagezi_whitelist_referral_exceptions.txt.gz", FormatAdblock)
		if st.Unsupported == 0 || st.Invalid != 0 {
			t.Errorf("%+v", countsOf(st))
		}
		for n, a := range sink.m {
			if a != [2]Action{ActAllow, ActAllow} {
				t.Fatalf("%s = %v/%v, want allow/allow", n, a[0], a[1])
			}
		}
	})
	t.Run("domains with bare addresses", func(t *testing.T) {
		st, _ := loadReal(t, "domains_urlhaus_filter.txt.gz", FormatDomains)
		if st.Unsupported == 0 || st.Invalid != 0 {
			t.Errorf("%+v", countsOf(st))
		}
	})
	t.Run("rpz name and wildcard", func(t *testing.T) {
		st, sink := loadReal(t, "rpz_hagezi_dyndns.txt.gz", FormatRPZ)
		if st.Invalid != 0 || st.Unsupported != 0 {
			t.Errorf("%+v %q", countsOf(st), st.Samples)
		}
		if st.Entries != 2*len(sink.m) {
			t.Errorf("%d records for %d names, want two each", st.Entries, len(sink.m))
		}
		for n, a := range sink.m {
			if a != [2]Action{ActNXDomain, ActNXDomain} {
				t.Fatalf("%s = %v/%v, want nxdomain/nxdomain", n, a[0], a[1])
			}
		}
	})
	t.Run("rpz exact names", func(t *testing.T) {
		_, sink := loadReal(t, "rpz_urlhaus_filter.conf.gz", FormatRPZ)
		for n, a := range sink.m {
			if a != [2]Action{ActNXDomain, ActNone} {
				t.Fatalf("%s = %v/%v, want nxdomain/none", n, a[0], a[1])
			}
		}
	})
}
