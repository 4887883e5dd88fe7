package policeui

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/outbox"
)

// panel is the status panel: the original's (session, encryption,
// signature, last message) plus the server key, the connection state and
// the queue. The page renders it and /api/state returns it, with the same
// field names, so the script can refresh it.
type panel struct {
	User       string `json:"user"`
	Server     string `json:"server"`
	SignedInAt string `json:"signed_in_at"`
	Suite      string `json:"suite"` // "tes1" or "tls"
	Encryption string `json:"encryption"`
	Signature  string `json:"signature"`
	Device     string `json:"device"`    // TLS: the device ID
	CAHash     string `json:"ca_hash"`   // TLS: the CA the server certificate chains to
	KeyLabel   string `json:"key_label"` // "Server key" (TES/1) or "Server certificate" (TLS)
	// SuiteWarning is set while reports go over TES/1 because the TLS
	// suite failed and --allow-legacy permits the fallback.
	SuiteWarning string      `json:"suite_warning"`
	State        string      `json:"state"`        // outbox.ConnState
	StateLabel   string      `json:"state_label"`  // "Online", "Offline", ...
	StateDetail  string      `json:"state_detail"` // why, and what happens next
	Fingerprint  string      `json:"fingerprint"`
	PinNote      string      `json:"pin_note"`
	LastMessage  string      `json:"last_message"`
	Decisions    string      `json:"decisions"`
	Queued       int         `json:"queued"` // on this device, not yet acknowledged
	Delivered    int         `json:"delivered"`
	KeyChanged   *keyWarning `json:"key_changed"`
}

// keyWarning is what the key-changed warning shows.
type keyWarning struct {
	Server  string `json:"server"`
	Pinned  string `json:"pinned"`
	Seen    string `json:"seen"`
	Command string `json:"command"`
}

// row is one report in the history list.
type row struct {
	ReportID   string `json:"report_id"`
	Plate      string `json:"plate"`
	Speed      int    `json:"speed"`
	SpeedLimit int    `json:"speed_limit"`
	Location   string `json:"location"`
	Observed   string `json:"observed"`
	Saved      string `json:"saved"`
	State      string `json:"state"`
	StateLabel string `json:"state_label"`
	Detail     string `json:"detail"`
}

func (ui *UI) fmtTime(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.In(ui.loc).Format("2006-01-02 15:04:05")
}

// fmtMinute shows a time to the minute: observed times are entered so.
func (ui *UI) fmtMinute(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.In(ui.loc).Format("2006-01-02 15:04")
}

// buildPanel reads the session's sender and the outbox.
func (ui *UI) buildPanel(r *http.Request, s *session) *panel {
	st := s.sender.Status()
	su := st.Suite
	p := &panel{User: s.user, Server: s.server, SignedInAt: ui.fmtTime(s.created), Suite: su.Suite,
		Encryption: su.Encryption, Signature: su.Signature, State: string(st.State), Device: su.Device,
		CAHash: su.CAHash, KeyLabel: "Server key", SuiteWarning: su.Warning, Fingerprint: su.Fingerprint, LastMessage: "None"}
	if p.Encryption == "" {
		p.Suite, p.Encryption, p.Signature = tes.SuiteTES1, EncryptionLabel, SignatureLabel
	}
	if p.Fingerprint == "" {
		p.Fingerprint = "—"
	}
	switch {
	case su.Suite == tes.SuiteTLS:
		p.KeyLabel = "Server certificate"
		p.PinNote = "Verified against the CA this client was enrolled with: " + su.CAHash + "."
	case st.FirstUse:
		p.PinNote = "Pinned at this sign-in (first connection to this server from this device)."
	case su.Fingerprint != "":
		p.PinNote = "Matches the key pinned for this server."
	}
	if st.LastMessage != "" {
		p.LastMessage = st.LastMessage + " · " + ui.fmtTime(st.LastMessageAt)
	}
	switch st.Decisions {
	case outbox.SupportYes:
		p.Decisions = "The officer server reports approvals and rejections."
	case outbox.SupportNo:
		p.Decisions = "This officer server does not report decisions (an original TES server): reports end at “acknowledged”."
	}
	switch st.State {
	case outbox.ConnOnline:
		p.StateLabel, p.StateDetail = "Online", "Signed in over TES/1; reports are sent as soon as they are saved."
		if su.Suite == tes.SuiteTLS {
			p.StateDetail = "Connected over the TLS suite as device " + su.Device + "; reports are signed with the device key and sent as soon as they are saved."
		} else if su.Warning != "" {
			p.StateDetail = "Signed in over TES/1, the legacy suite, because the TLS suite failed and --allow-legacy permits it; reports are sent as soon as they are saved."
		}
	case outbox.ConnConnecting:
		p.StateLabel, p.StateDetail = "Connecting", "Connecting to the officer server."
	case outbox.ConnOffline:
		p.StateLabel = "Offline"
		p.StateDetail = st.LastError + " Next attempt " + ui.when(st.NextAttempt) + "."
	case outbox.ConnKeyChanged:
		p.StateLabel = "Server key changed"
		p.StateDetail = "Nothing is sent to this server until an administrator checks the new key. Your reports stay queued on this device."
	case outbox.ConnLoginFailed:
		p.StateLabel = "Sign-in refused"
		p.StateDetail = st.LastError + " Your reports stay queued on this device: sign out and sign in again."
	case outbox.ConnNoDowngrade:
		p.StateLabel = "TLS suite unreachable"
		p.StateDetail = st.LastError + " Next attempt " + ui.when(st.NextAttempt) + "."
	case outbox.ConnDeviceRevoked:
		p.StateLabel = "Device revoked"
		p.StateDetail = st.LastError
	case outbox.ConnStopped:
		p.StateLabel, p.StateDetail = "Stopped", "This session was closed."
	}
	if c := st.Changed; c != nil {
		p.KeyChanged = &keyWarning{Server: c.Server, Pinned: c.Pinned, Seen: c.Seen, Command: forgetCommand(c.Server, c.File)}
	}
	if counts, err := ui.ob.Counts(r.Context(), s.user, s.server); err == nil {
		p.Queued = counts[outbox.StateQueued] + counts[outbox.StateSent]
		p.Delivered = counts[outbox.StateAcknowledged] + counts[outbox.StateApproved] + counts[outbox.StateRejected]
	} else {
		ui.log.Error("outbox counts", "err", err)
	}
	return p
}

// forgetCommand is the command an administrator runs to re-pin a server.
func forgetCommand(server, file string) string {
	cmd := "tes police pins forget " + server
	if file != "" {
		cmd += " --pins " + file
	}
	return cmd
}

// when says when a future time is, in words.
func (ui *UI) when(t time.Time) string {
	d := t.Sub(ui.now())
	switch {
	case t.IsZero() || d <= time.Second:
		return "now"
	case d < time.Minute:
		return fmt.Sprintf("in %d s", int(d.Round(time.Second).Seconds()))
	}
	return "at " + t.In(ui.loc).Format("15:04:05")
}

// buildRows turns outbox entries into history rows.
func (ui *UI) buildRows(list []*outbox.Entry, decisions outbox.Support) []row {
	rows := make([]row, 0, len(list))
	for _, e := range list {
		rw := row{ReportID: e.ReportID, Plate: e.Plate, Speed: e.Speed, SpeedLimit: e.SpeedLimit, Location: e.Location,
			Observed: ui.fmtMinute(e.ObservedAt), Saved: ui.fmtTime(e.CreatedAt), State: string(e.State)}
		switch e.State {
		case outbox.StateQueued:
			rw.StateLabel = "Queued on this device"
			rw.Detail = "Waiting to be sent."
			if e.LastError != "" {
				rw.Detail = e.LastError
			}
			if e.Attempts > 0 {
				rw.Detail += fmt.Sprintf(" (%d attempt%s so far)", e.Attempts, plural(e.Attempts))
			}
		case outbox.StateSent:
			rw.StateLabel = "Sent"
			rw.Detail = "Sent; waiting for the server's acknowledgement."
		case outbox.StateAcknowledged:
			rw.StateLabel = "Acknowledged"
			rw.Detail = "Stored by the officer server at " + ui.fmtTime(e.AckedAt) + "; awaiting review."
			if decisions == outbox.SupportNo {
				rw.Detail = "Stored by the officer server at " + ui.fmtTime(e.AckedAt) + "."
			}
		case outbox.StateApproved:
			rw.StateLabel = "Approved"
			rw.Detail = fmt.Sprintf("Approved %s; %d penalty point%s applied.", ui.fmtTime(e.DecidedAt), e.DecidedPoints, plural(e.DecidedPoints))
		case outbox.StateRejected:
			rw.StateLabel = "Rejected"
			rw.Detail = "Rejected " + ui.fmtTime(e.DecidedAt) + ": " + rejectLabel(e.DecidedReason) + "."
		case outbox.StateRefused:
			rw.StateLabel = "Refused by the server"
			rw.Detail = "The officer server refused it (" + e.LastError + "); it will not be sent again."
			if e.LastError == "Unauthorized" {
				rw.Detail = "The officer server refused it (Unauthorized: this account may not send reports); it will not be sent again."
			}
		}
		rows = append(rows, rw)
	}
	return rows
}

func rejectLabel(r tes.RejectReason) string {
	if r == "" {
		return "no reason given"
	}
	return r.Label()
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// stateJSON is /api/state's answer.
type stateJSON struct {
	Panel   *panel `json:"panel"`
	Reports []row  `json:"reports"`
}

// apiState returns the panel and the newest reports as JSON for the
// page's refresh. It does not restart the session's idle timeout.
func (ui *UI) apiState(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	s := ui.sessions.get(r, false)
	if s == nil {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		w.Write([]byte(`{"error":"Your session has ended. Sign in again."}` + "\n"))
		return
	}
	limit := 10
	if r.URL.Query().Get("list") == "all" {
		limit = historyLimit
	}
	list, err := ui.ob.List(r.Context(), s.user, s.server, limit)
	if err != nil {
		ui.log.Error("outbox list", "err", err)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		w.Write([]byte(`{"error":"The outbox on this device could not be read."}` + "\n"))
		return
	}
	p := ui.buildPanel(r, s)
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(stateJSON{Panel: p, Reports: ui.buildRows(list, s.sender.Status().Decisions)})
}

// retry asks the session's sender to try again now (the "Retry now"
// button, and the page's script when the browser comes back online).
func (ui *UI) retry(w http.ResponseWriter, r *http.Request) {
	currentSession(r).sender.Kick()
	if strings.Contains(r.Header.Get("Accept"), "application/json") {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	back := "/report"
	if r.PostFormValue("back") == "history" {
		back = "/history"
	}
	http.Redirect(w, r, back+"?msg=retry", http.StatusSeeOther)
}
