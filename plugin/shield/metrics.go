package shield

import (
	"time"

	"github.com/coredns/coredns/plugin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics. Labels are bounded: the server, the action and the configured
// list names. A client address or a domain never becomes a label; that
// detail belongs in the audit log.
var (
	queries = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace,
		Subsystem: "shield",
		Name:      "queries_total",
		Help:      "Queries seen by shield, by the action taken: pass, allow, block, sinkhole, monitor, quarantine, walled_garden, or refused (a zone transfer).",
	}, []string{"server", "action"})

	answerBlocks = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace,
		Subsystem: "shield",
		Name:      "answer_blocks_total",
		Help:      "Answers blocked (or, in monitor mode, recorded) by the answer stage, by trigger: cname, dname, svcb (SVCB and HTTPS targets), ip (an iplist or an rpz-ip rule), rebind, or limit (an answer too big to check).",
	}, []string{"server", "trigger"})

	listHits = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace,
		Subsystem: "shield",
		Name:      "list_hits_total",
		Help:      "Queries matched by a blocklist, by list (monitor-mode hits included).",
	}, []string{"server", "list"})

	listEntries = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: plugin.Namespace,
		Subsystem: "shield",
		Name:      "list_entries",
		Help:      "Distinct names in the list version in force.",
	}, []string{"list"})

	listSkipped = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: plugin.Namespace,
		Subsystem: "shield",
		Name:      "list_skipped_lines",
		Help:      "Lines of the list version in force that were skipped, by kind: invalid or unsupported.",
	}, []string{"list", "kind"})

	reloads = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace,
		Subsystem: "shield",
		Name:      "list_reloads_total",
		Help:      "Successful loads of a new list version.",
	}, []string{"list"})

	reloadFailures = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace,
		Subsystem: "shield",
		Name:      "list_reload_failures_total",
		Help:      "Refused list updates, by reason: read, empty, garbage, shrink, gzip or size. The last good version stays in force.",
	}, []string{"list", "reason"})

	lastReload = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: plugin.Namespace,
		Subsystem: "shield",
		Name:      "list_last_reload_timestamp_seconds",
		Help:      "Unix time at which the list version in force was loaded.",
	}, []string{"list"})

	loadSeconds = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: plugin.Namespace,
		Subsystem: "shield",
		Name:      "list_load_duration_seconds",
		Help:      "Time taken to read, parse and build the list version in force.",
	}, []string{"list"})

	auditDropped = promauto.NewCounter(prometheus.CounterOpts{
		Namespace: plugin.Namespace,
		Subsystem: "shield",
		Name:      "audit_dropped_total",
		Help:      "Audit records dropped because the writer's queue was full.",
	})

	auditErrors = promauto.NewCounter(prometheus.CounterOpts{
		Namespace: plugin.Namespace,
		Subsystem: "shield",
		Name:      "audit_write_errors_total",
		Help:      "Failed writes of audit records to their sink.",
	})
)

func countQuery(server, action string) { queries.WithLabelValues(server, action).Inc() }

// Containment metrics (contain.go). The rule label is an escalate line of
// the Corefile; the endpoint label is one of a fixed set.
var (
	quarantinesActive = promauto.NewGauge(prometheus.GaugeOpts{
		Namespace: plugin.Namespace,
		Subsystem: "shield",
		Name:      "quarantines_active",
		Help:      "Clients (addresses or networks) in quarantine.",
	})

	emergencyBlocksActive = promauto.NewGauge(prometheus.GaugeOpts{
		Namespace: plugin.Namespace,
		Subsystem: "shield",
		Name:      "emergency_blocks_active",
		Help:      "Emergency domain blocks in force.",
	})

	escalations = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace,
		Subsystem: "shield",
		Name:      "escalations_total",
		Help:      "Escalate rules that fired, by rule and mode (in monitor mode nothing is quarantined).",
	}, []string{"rule", "mode"})

	containErrors = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace,
		Subsystem: "shield",
		Name:      "contain_errors_total",
		Help:      "Containment failures, by kind: load, corrupt (state file set aside), save, full (quarantine limit), cap (an escalation over the quarantine cap).",
	}, []string{"kind"})

	apiRequests = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace,
		Subsystem: "shield",
		Name:      "api_requests_total",
		Help:      "Management API requests, by endpoint and HTTP status code.",
	}, []string{"endpoint", "code"})

	apiAuthFailures = promauto.NewCounter(prometheus.CounterOpts{
		Namespace: plugin.Namespace,
		Subsystem: "shield",
		Name:      "api_auth_failures_total",
		Help:      "Management API requests refused for a missing or invalid token.",
	})

	apiForbidden = promauto.NewCounter(prometheus.CounterOpts{
		Namespace: plugin.Namespace,
		Subsystem: "shield",
		Name:      "api_forbidden_total",
		Help:      "Management API requests refused with 403: a read token asking for a change.",
	})

	apiThrottled = promauto.NewCounter(prometheus.CounterOpts{
		Namespace: plugin.Namespace,
		Subsystem: "shield",
		Name:      "api_throttled_total",
		Help:      "Management API requests refused with 429: their source failed to authenticate too often.",
	})

	escalationsSuppressed = promauto.NewCounter(prometheus.CounterOpts{
		Namespace: plugin.Namespace,
		Subsystem: "shield",
		Name:      "escalations_suppressed_total",
		Help:      "Blocks not counted towards escalation because their rule fired for the client within its window.",
	})

	detections = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace,
		Subsystem: "shield",
		Name:      "detections_total",
		Help:      "Queries scored at or above a detection threshold, by detector (tunnel, dga, newly_seen) and action (alert, block, monitor). Sticky blocks count as blocks.",
	}, []string{"server", "detector", "action"})

	detectTableEntries = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: plugin.Namespace,
		Subsystem: "shield",
		Name:      "detect_table_entries",
		Help:      "Entries in use in the detection tables, by table: domains, clients, verdicts.",
	}, []string{"table"})

	detectTableCapacity = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: plugin.Namespace,
		Subsystem: "shield",
		Name:      "detect_table_capacity",
		Help:      "Fixed capacity of the detection tables, by table: domains, clients, verdicts.",
	}, []string{"table"})

	detectEvictions = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace,
		Subsystem: "shield",
		Name:      "detect_evictions_total",
		Help:      "Entries of the detection tables replaced by new ones, by table: domains, clients, verdicts (an expired verdict is not counted).",
	}, []string{"table"})

	detectVerdictsRefused = promauto.NewCounter(prometheus.CounterOpts{
		Namespace: plugin.Namespace,
		Subsystem: "shield",
		Name:      "detect_verdicts_refused_total",
		Help:      "Block verdicts not made sticky because their bucket held only protected verdicts (the query itself was blocked).",
	})

	detectVerdictsRefusedShare = promauto.NewCounter(prometheus.CounterOpts{
		Namespace: plugin.Namespace,
		Subsystem: "shield",
		Name:      "detect_verdicts_refused_share_total",
		Help:      "Block verdicts not made sticky because their client held its share of the verdict table (the query itself was blocked).",
	})

	detectStateErrors = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace,
		Subsystem: "shield",
		Name:      "detect_state_errors_total",
		Help:      "Detection state file failures, by kind: load (unreadable), corrupt (set aside), save (the previous file stays).",
	}, []string{"kind"})

	detectMemory = promauto.NewGauge(prometheus.GaugeOpts{
		Namespace: plugin.Namespace,
		Subsystem: "shield",
		Name:      "detect_memory_bytes",
		Help:      "Memory of the detection tables, fixed when the engine starts.",
	})
)

// Feed metrics (feeds.go). The outcome label is one of the feed package's
// fixed outcomes.
var (
	feedFetches = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace,
		Subsystem: "shield",
		Name:      "feed_fetch_total",
		Help:      "Fetches of lists from HTTP(S) feeds and zone transfers, by outcome: updated, unchanged, not_modified, axfr, ixfr, refused_REASON, error_network, error_local, and at start-up cache_loaded or cache_refused.",
	}, []string{"list", "outcome"})

	feedLastSuccessDesc = prometheus.NewDesc(
		prometheus.BuildFQName(plugin.Namespace, "shield", "feed_last_success_timestamp_seconds"),
		"Unix time at which the feed last confirmed the list in force (a 200 or a 304; from the disk cache's record at start-up).",
		[]string{"list"}, nil)

	listAgeDesc = prometheus.NewDesc(
		prometheus.BuildFQName(plugin.Namespace, "shield", "list_age_seconds"),
		"Seconds since the feed last confirmed the list in force, computed when scraped. Alert when it passes a few times refresh.",
		[]string{"list"}, nil)
)

func init() { prometheus.MustRegister(feedCollector{}) }

// feedCollector reports the last success and the age of every feed list
// of the running shields, read from the fetchers' status when scraped, so
// that the age grows between fetches. Two fetchers may keep lists of the
// same name (two server blocks, or the old and new configuration during a
// Corefile reload); the older copy is reported, as an alert wants.
type feedCollector struct{}

func (feedCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- feedLastSuccessDesc
	ch <- listAgeDesc
}

func (feedCollector) Collect(ch chan<- prometheus.Metric) {
	liveFeeds.Lock()
	oldest := map[string]time.Time{}
	for f := range liveFeeds.m {
		st := f.Status()
		if st.LastSuccess.IsZero() {
			continue
		}
		if t, ok := oldest[st.List]; !ok || st.LastSuccess.Before(t) {
			oldest[st.List] = st.LastSuccess
		}
	}
	liveFeeds.Unlock()
	now := time.Now()
	for name, t := range oldest {
		ch <- prometheus.MustNewConstMetric(feedLastSuccessDesc, prometheus.GaugeValue, float64(t.UnixNano())/1e9, name)
		ch <- prometheus.MustNewConstMetric(listAgeDesc, prometheus.GaugeValue, max(now.Sub(t).Seconds(), 0), name)
	}
}
