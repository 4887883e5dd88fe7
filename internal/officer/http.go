package officer

import (
	"encoding/json"
	"net/http"
	"time"
)

func (s *Server) handler() (http.Handler, error) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
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
