package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// defaultAPI is where the management API listens in the README's examples.
const defaultAPI = "127.0.0.1:8053"

// apiCommands lists the management API commands and what they do.
var apiCommands = map[string]string{
	"status":     "lists, versions, reload errors, counts (GET /v1/status)",
	"explain":    "the verdict a query would get: explain [-client IP] NAME (GET /v1/explain)",
	"quarantine": "quarantine [list] | quarantine add [-ttl D] [-force] -reason R CLIENT (GET/POST /v1/quarantine)",
	"release":    "release CLIENT (DELETE /v1/quarantine/CLIENT)",
	"blocks":     "list the emergency blocks (GET /v1/blocks)",
	"block":      "block [-ttl D] [-force] -reason R NAME (POST /v1/blocks)",
	"unblock":    "unblock NAME (DELETE /v1/blocks/NAME)",
	"audit":      "recent audit records: audit [-limit N] (GET /v1/audit)",
	"verdicts":   "list the detection verdicts, their scope and clients (GET /v1/verdicts)",
	"clear":      "clear DOMAIN: remove the detection verdicts on a registered domain (DELETE /v1/verdicts/DOMAIN)",
	"promote":    "promote -reason R DOMAIN: make a detection verdict fleet-wide (POST /v1/verdicts/DOMAIN/promote)",
}

// apiClient calls one resolver's management API.
type apiClient struct {
	base  string
	token string
	http  *http.Client
	out   io.Writer
}

// runAPI runs the management API command cmd. ok is false when cmd is not
// an API command.
func runAPI(cmd string, args []string) (ok bool, err error) {
	if _, known := apiCommands[cmd]; !known {
		return false, nil
	}
	return true, runAPIWith(cmd, args, os.Stdout, os.Getenv)
}

func runAPIWith(cmd string, args []string, out io.Writer, getenv func(string) string) error {
	sub := ""
	if cmd == "quarantine" {
		sub = "list"
		if len(args) > 0 && (args[0] == "list" || args[0] == "add") {
			sub, args = args[0], args[1:]
		}
	}
	fs := flag.NewFlagSet("shieldctl "+cmd, flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	addr := fs.String("api", defaultAPI, "management API address, HOST:PORT or http://HOST:PORT")
	tokenFile := fs.String("token-file", "", "file holding the bearer token (default: $SHIELD_TOKEN)")
	timeout := fs.Duration("timeout", 10*time.Second, "request timeout")
	var client, ttl, reason *string
	var limit *int
	var force *bool
	switch {
	case cmd == "explain":
		client = fs.String("client", "", "client address to explain the query for")
	case cmd == "quarantine", cmd == "block":
		ttl = fs.String("ttl", "", "how long, e.g. 30m or 2h (default: the server's)")
		reason = fs.String("reason", "", "why (required)")
		force = fs.Bool("force", false, "override a guard rail: the quarantine cap, or a block of a public suffix")
	case cmd == "audit":
		limit = fs.Int("limit", 20, "how many records, newest first")
	case cmd == "promote":
		reason = fs.String("reason", "", "why the whole fleet must be blocked (required)")
	}
	fs.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: shieldctl %s [flags] ...\n  %s\n", cmd, apiCommands[cmd])
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	pos := fs.Args()
	// "quarantine -api ADDR add -reason R CLIENT": the word after the
	// common flags picks the subcommand, and its own flags follow it.
	if cmd == "quarantine" && len(pos) > 0 && (pos[0] == "add" || pos[0] == "list") {
		sub = pos[0]
		if err := fs.Parse(pos[1:]); err != nil {
			return err
		}
		pos = fs.Args()
	}
	tok, err := readToken(*tokenFile, getenv)
	if err != nil {
		return err
	}
	base := *addr
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	c := &apiClient{base: strings.TrimRight(base, "/"), token: tok, http: &http.Client{Timeout: *timeout}, out: out}
	one := func(what string) (string, error) {
		if len(pos) != 1 {
			return "", fmt.Errorf("want one %s, got %d arguments", what, len(pos))
		}
		return pos[0], nil
	}
	switch cmd {
	case "status":
		return c.do("GET", "/v1/status", nil)
	case "explain":
		name, err := one("NAME")
		if err != nil {
			return err
		}
		q := url.Values{"name": {name}}
		if *client != "" {
			q.Set("client", *client)
		}
		return c.do("GET", "/v1/explain?"+q.Encode(), nil)
	case "quarantine":
		if sub == "list" {
			if len(pos) != 0 {
				return errors.New("quarantine list takes no arguments; to add: quarantine add -reason R CLIENT")
			}
			return c.do("GET", "/v1/quarantine", nil)
		}
		cl, err := one("CLIENT")
		if err != nil {
			return err
		}
		return c.do("POST", "/v1/quarantine", changeBody("client", cl, *ttl, *reason, *force))
	case "release":
		cl, err := one("CLIENT")
		if err != nil {
			return err
		}
		return c.do("DELETE", "/v1/quarantine/"+pathEscape(cl), nil)
	case "blocks":
		return c.do("GET", "/v1/blocks", nil)
	case "block":
		name, err := one("NAME")
		if err != nil {
			return err
		}
		return c.do("POST", "/v1/blocks", changeBody("name", name, *ttl, *reason, *force))
	case "unblock":
		name, err := one("NAME")
		if err != nil {
			return err
		}
		return c.do("DELETE", "/v1/blocks/"+url.PathEscape(name), nil)
	case "audit":
		return c.do("GET", "/v1/audit?limit="+strconv.Itoa(*limit), nil)
	case "verdicts":
		return c.do("GET", "/v1/verdicts", nil)
	case "clear":
		name, err := one("DOMAIN")
		if err != nil {
			return err
		}
		return c.do("DELETE", "/v1/verdicts/"+url.PathEscape(name), nil)
	case "promote":
		name, err := one("DOMAIN")
		if err != nil {
			return err
		}
		return c.do("POST", "/v1/verdicts/"+url.PathEscape(name)+"/promote", map[string]string{"reason": *reason})
	}
	return fmt.Errorf("unknown command %q", cmd)
}

// changeBody returns the body of a quarantine or block request. An empty
// ttl is left out, so the server applies its default, and force is sent
// only when set.
func changeBody(key, value, ttl, reason string, force bool) map[string]any {
	m := map[string]any{key: value, "reason": reason}
	if ttl != "" {
		m["ttl"] = ttl
	}
	if force {
		m["force"] = true
	}
	return m
}

// pathEscape escapes a client for the path, keeping the '/' of a CIDR,
// which the server's route takes as part of the client.
func pathEscape(v string) string {
	parts := strings.Split(v, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}

// readToken reads the token from file, else from $SHIELD_TOKEN.
func readToken(file string, getenv func(string) string) (string, error) {
	if file != "" {
		data, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("token file: %w", err)
		}
		tok := strings.TrimSpace(string(data))
		// Accept the server's own NAME:TOKEN line too.
		if name, t, ok := strings.Cut(tok, ":"); ok && !strings.ContainsAny(name, " \n") && !strings.Contains(tok, "\n") {
			tok = t
		}
		if tok == "" {
			return "", fmt.Errorf("token file %s is empty", file)
		}
		return tok, nil
	}
	if tok := strings.TrimSpace(getenv("SHIELD_TOKEN")); tok != "" {
		return tok, nil
	}
	return "", errors.New("no token: use -token-file FILE or set SHIELD_TOKEN")
}

// do sends one request and prints the JSON answer. A status other than
// 2xx is an error carrying the server's message.
func (c *apiClient) do(method, path string, body any) error {
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s: %s", resp.Status, e.Error)
		}
		return errors.New(resp.Status)
	}
	_, err = c.out.Write(data)
	return err
}
