package officer

import (
	"encoding/json"
	"net/http"
	"net/netip"
	"time"
)

func (s *Server) handler() (http.Handler, error) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.Handle("GET /metrics", s.metricsGuard(s.Metrics.Handler()))
	if s.cfg.UI != nil {
		ui, err := s.cfg.UI(s)
		if err != nil {
			return nil, err
		}
		mux.Handle("/", ui)
	}
	return mux, nil
}

// healthz answers 200 with live facts when the store answers, 503 otherwise.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	st := s.Status()
	body := map[string]any{
		"status":         "ok",
		"uptime_seconds": int64(time.Since(st.StartedAt).Seconds()),
		"connections":    st.Connections,
		"reports_total":  st.ReportsTotal,
		"refused_total":  st.RefusedTotal,
		"fingerprints":   st.Fingerprints,
	}
	code := http.StatusOK
	if _, err := s.Store.CountUsers(r.Context()); err != nil {
		body["status"] = "store unavailable"
		code = http.StatusServiceUnavailable
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(body)
}

// metricsGuard lets only the allowed networks (default loopback) read
// /metrics: the figures are operational detail an outsider has no need for.
func (s *Server) metricsGuard(h http.Handler) http.Handler {
	allow := s.cfg.MetricsAllow
	if len(allow) == 0 {
		allow = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ap, err := netip.ParseAddrPort(r.RemoteAddr)
		ok := err == nil
		if ok {
			ok = false
			for _, p := range allow {
				if p.Contains(ap.Addr().Unmap()) {
					ok = true
					break
				}
			}
		}
		if !ok {
			http.Error(w, "metrics are not served to this address (see --metrics-allow)", http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}
