package shield

import (
	"sync"
	"time"

	"github.com/dnsshield/shield/plugin/shield/api"
)

// The management API's HTTP servers. They are process-wide, unlike a
// Shield: a server outlives the configuration that started it when a
// Corefile reload hands it to the next one.

// apiServers holds the API servers, by address. A Corefile reload starts the new
// configuration before it stops the old one, so the new one takes over
// the listening server (and its handler) instead of binding again.
var apiServers = struct {
	sync.Mutex
	m map[string]*apiServer
}{m: map[string]*apiServer{}}

// apiServer is one listening API server and the configurations that
// hold it.
type apiServer struct {
	srv   *api.Server
	refs  int     // running configurations that hold it
	owner *Shield // the configuration the handler serves
}

// startAPI serves s's API on its address: it starts the server, or takes
// over the one the configuration before a reload started.
func (s *Shield) startAPI() error {
	warden := s.warden
	handler := api.NewHandler(backend{s}, warden.tokens, api.Options{
		OnRequest:     func(ep string, code int) { apiRequests.WithLabelValues(ep, itoa(code)).Inc() },
		OnAuthFailure: apiAuthFailures.Inc,
	})
	warden.handler = handler
	apiServers.Lock()
	defer apiServers.Unlock()
	if held, ok := apiServers.m[warden.apiAddr]; ok {
		// A Corefile reload: take over the server, and the quarantines and
		// blocks of the configuration it served (with or without a state
		// file), so a reload does not release anyone.
		if old := held.owner; old != nil && old.warden != nil && old.warden.store != nil {
			now := time.Now()
			if n, _ := warden.store.Restore(old.warden.store.Snapshot(now), now); n > 0 {
				log.Infof("carried %d quarantines and emergency blocks over the reload", n)
			}
		}
		held.srv.SetHandler(handler)
		held.refs++
		held.owner = s
		warden.api = warden.apiAddr
		return nil
	}
	srv, err := api.Listen(warden.apiAddr, handler)
	if err != nil {
		return err
	}
	if !api.IsLoopback(warden.apiAddr) {
		log.Warningf("management API listens on %s, which is not loopback; it has no TLS, put it behind held TLS proxy", warden.apiAddr)
	}
	apiServers.m[warden.apiAddr] = &apiServer{srv: srv, refs: 1, owner: s}
	warden.api = warden.apiAddr
	return nil
}

// reclaimAPI runs when a Corefile reload from this configuration fails.
// The new configuration may have failed after its start-up took over the
// API server (another plugin's start-up, or a server that could not
// listen), and CoreDNS neither runs its shutdown nor stops this one. The
// server then still belongs to this configuration: take it back with the
// quarantines and blocks made in between, and stop the failed
// configuration's state writer, which would otherwise keep writing the
// state file from a store nobody serves.
func (s *Shield) reclaimAPI() error {
	warden := s.warden
	apiServers.Lock()
	held := apiServers.m[warden.api]
	if warden.api == "" || held == nil || held.owner == s {
		// Shut down already, or nothing was taken over.
		apiServers.Unlock()
		return nil
	}
	failed := held.owner
	held.owner = s
	held.srv.SetHandler(warden.handler)
	if failed != nil && failed.warden != nil && failed.warden.api == warden.api {
		failed.warden.api = "" // its ref is given up here, not by a shutdown
		held.refs--
	} else {
		failed = nil // it shut itself down already
	}
	apiServers.Unlock()
	if failed == nil {
		return nil
	}
	failedWarden := failed.warden
	if failedWarden.done != nil {
		failed.stopContainLoop()
		failed.dropContainGauges()
	}
	now := time.Now()
	if n, _ := warden.store.Restore(failedWarden.store.Snapshot(now), now); n > 0 {
		log.Infof("took back %d quarantines and emergency blocks from the failed reload", n)
	}
	s.updateContainGauges()
	log.Warningf("Corefile reload failed: the management API on %s serves the running configuration again", warden.api)
	return nil
}

// stopAPI gives up s's hold on its API server, and closes the server when
// no configuration holds it any more.
func (s *Shield) stopAPI() {
	warden := s.warden
	if warden.api == "" {
		return
	}
	apiServers.Lock()
	defer apiServers.Unlock()
	held := apiServers.m[warden.api]
	warden.api = ""
	if held == nil {
		return
	}
	if held.owner == s {
		held.owner = nil
	}
	if held.refs--; held.refs <= 0 {
		delete(apiServers.m, warden.apiAddr)
		held.srv.Close()
	}
}
