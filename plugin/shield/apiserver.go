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
	srv      *api.Server
	refs     int               // running configurations that hold it
	owner    *Shield           // the configuration the handler serves
	throttle *api.AuthThrottle // failed authentications, kept across reloads
}

// listenOptions returns how w's API server is reached.
func (w *warden) listenOptions() api.ListenOptions {
	return api.ListenOptions{CertFile: w.tlsCert, KeyFile: w.tlsKey, Insecure: w.insecure}
}

// startAPI serves s's API on its address: it starts the server, or takes
// over the one the configuration before a reload started.
func (s *Shield) startAPI() error {
	warden := s.warden
	apiServers.Lock()
	defer apiServers.Unlock()
	held, ok := apiServers.m[warden.apiAddr]
	throttle := api.NewAuthThrottle(api.ThrottleOptions{})
	if ok {
		throttle = held.throttle // a reload does not forgive a guesser
	}
	handler := api.NewHandler(backend{s}, warden.tokens, api.Options{
		OnRequest:     func(ep string, code int) { apiRequests.WithLabelValues(ep, itoa(code)).Inc() },
		OnAuthFailure: apiAuthFailures.Inc,
		OnForbidden:   apiForbidden.Inc,
		OnThrottle:    apiThrottled.Inc,
		Throttle:      throttle,
	})
	warden.handler = handler
	if ok {
		// A Corefile reload: take over the server (in the TLS mode and
		// with the certificate this configuration names), and the
		// quarantines and blocks of the configuration it served (with or
		// without a state file), so a reload does not release anyone.
		if err := held.adopt(warden); err != nil {
			return err
		}
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
	srv, err := api.ListenWith(warden.apiAddr, handler, warden.listenOptions())
	if err != nil {
		return err
	}
	apiServers.m[warden.apiAddr] = &apiServer{srv: srv, refs: 1, owner: s, throttle: throttle}
	warden.api = warden.apiAddr
	return nil
}

// adopt makes the server speak as w says: with TLS, it reads w's
// certificate and key again (a renewed certificate needs no restart);
// when w switches between TLS and plain HTTP it closes the server and
// listens again, and if that fails it listens as before, so the
// configuration that holds it keeps its API. The caller holds apiServers.
func (a *apiServer) adopt(w *warden) error {
	useTLS := w.tlsCert != ""
	if useTLS && a.srv.TLS() {
		return a.srv.ReloadTLS(w.tlsCert, w.tlsKey)
	}
	if useTLS == a.srv.TLS() {
		return nil
	}
	a.srv.Close()
	srv, err := api.ListenWith(w.apiAddr, w.handler, w.listenOptions())
	if err == nil {
		a.srv = srv
		return nil
	}
	if old := a.owner; old != nil && old.warden != nil {
		if back, berr := api.ListenWith(w.apiAddr, old.warden.handler, old.warden.listenOptions()); berr == nil {
			a.srv = back
			return err
		}
	}
	// Nothing listens now; the server stays in the registry, closed, so
	// that the holders' shutdowns balance.
	log.Errorf("management API on %s: cannot listen again: %v", w.apiAddr, err)
	return err
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
	if err := held.adopt(warden); err != nil {
		log.Errorf("management API on %s: %v", warden.api, err)
	}
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
